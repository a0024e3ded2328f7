import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parseAlicloudConfig } from '../../../../../src/driver/backends/alicloud/config.js';
import {
  checkCredential,
  credentialFor,
} from '../../../../../src/driver/backends/alicloud/credentials.js';

function configError(flags: Record<string, string>, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseAlicloudConfig(flags, env);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the configuration was accepted');
}

describe('alicloud backend configuration', function () {
  const base = { region: 'cn-hangzhou', zone: 'cn-hangzhou-h' };

  it('takes the flags the driver documents, with defaults', function () {
    const config = parseAlicloudConfig(
      { ...base, 'ecs-endpoint': '127.0.0.1:8080', 'ecs-protocol': 'http' },
      {},
    );
    expect(config).to.deep.include({
      region: 'cn-hangzhou',
      zone: 'cn-hangzhou-h',
      ecsEndpoint: '127.0.0.1:8080',
      ecsProtocol: 'http',
      ecsNetwork: 'public',
      credentials: { source: 'default' },
      requestTimeoutMs: 10_000,
      rateLimits: {},
    });
  });

  it('falls back to the environment variables the ACK driver reads', function () {
    const config = parseAlicloudConfig(base, {
      ECS_ENDPOINT: 'ecs-vpc.cn-hangzhou.aliyuncs.com',
      ALICLOUD_CLIENT_SCHEME: 'HTTP',
      ALIBABA_CLOUD_NETWORK_TYPE: 'vpc',
      CLUSTER_ID: 'c-abc',
    });
    expect(config).to.deep.include({
      ecsEndpoint: 'ecs-vpc.cn-hangzhou.aliyuncs.com',
      ecsProtocol: 'http',
      ecsNetwork: 'vpc',
      clusterId: 'c-abc',
    });
  });

  it('parses per-API rate limits and a credentials directory', function () {
    const config = parseAlicloudConfig(
      {
        ...base,
        'ecs-rate-limits': 'CreateSnapshot=5,DescribeSnapshots=50',
        'credentials-dir': '/etc/ecs',
      },
      {},
    );
    expect(config.rateLimits).to.deep.equal({ CreateSnapshot: 5, DescribeSnapshots: 50 });
    expect(config.credentials).to.deep.equal({ source: 'secret-dir', dir: '/etc/ecs' });
  });

  it('takes the snapshot-consistent group limits from flags, ECS defaults otherwise', function () {
    expect(parseAlicloudConfig(base, {}).groupSnapshotLimits).to.deep.equal({
      maxDisks: 16,
      maxTotalGiB: 32768,
    });
    const config = parseAlicloudConfig(
      { ...base, 'group-snapshot-max-disks': '8', 'group-snapshot-max-gib': '65536' },
      {},
    );
    expect(config.groupSnapshotLimits).to.deep.equal({ maxDisks: 8, maxTotalGiB: 65536 });
    const message = configError({
      ...base,
      'group-snapshot-max-disks': '0',
      'group-snapshot-max-gib': 'lots',
    });
    expect(message).to.include('--group-snapshot-max-disks must be a whole number');
    expect(message).to.include('--group-snapshot-max-gib must be a whole number');
  });

  it('lists every problem at once, naming the flag to fix', function () {
    const message = configError({
      'ecs-endpoint': 'https://ecs.example.com',
      'ecs-protocol': 'ftp',
      'ecs-rate-limits': 'Nope=1',
    });
    expect(message).to.include('--region');
    expect(message).to.include('--zone');
    expect(message).to.include('without a scheme');
    expect(message).to.include('--ecs-protocol must be https or http');
    expect(message).to.include('"Nope=1" is not <Action>=<requests per second>');
  });

  it('refuses --credentials=env without the access key variables, and an unknown source', function () {
    expect(
      configError({ ...base, credentials: 'env' }, { ALIBABA_CLOUD_ACCESS_KEY_ID: 'id' }),
    ).to.include('--credentials=env needs ALIBABA_CLOUD_ACCESS_KEY_SECRET');
    expect(configError({ ...base, credentials: 'magic' })).to.include(
      '--credentials must be one of default, env, secret-dir',
    );
    expect(configError({ ...base, credentials: 'secret-dir' })).to.include('--credentials-dir');
  });

  describe('credentials from a mounted Secret', function () {
    let dir: string;

    beforeEach(async function () {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ecs-credentials-'));
    });

    afterEach(async function () {
      await rm(dir, { recursive: true, force: true });
    });

    it('reads the access key pair and the optional STS token', async function () {
      await writeFile(path.join(dir, 'access-key-id'), 'LTAI-id\n');
      await writeFile(path.join(dir, 'access-key-secret'), 'secret-value\n');
      await writeFile(path.join(dir, 'security-token'), 'sts-token');
      const resolved = await credentialFor({ source: 'secret-dir', dir }, {}).getCredential();
      expect(resolved).to.include({
        accessKeyId: 'LTAI-id',
        accessKeySecret: 'secret-value',
        securityToken: 'sts-token',
      });
    });

    it('fails the start-up check with what to set, never with the secret', async function () {
      await writeFile(path.join(dir, 'access-key-secret'), 'secret-value');
      const error = await checkCredential(
        credentialFor({ source: 'secret-dir', dir }, {}),
        'secret-dir',
        1000,
      ).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).to.include('cannot read access-key-id');
      expect(error?.message).to.include('ALIBABA_CLOUD_ACCESS_KEY_ID');
      expect(error?.message).to.not.include('secret-value');
    });
  });
});
