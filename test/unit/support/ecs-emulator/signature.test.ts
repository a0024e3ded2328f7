import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import { EcsEmulator } from '../../../support/ecs-emulator/emulator.js';
import { canonicalQueryString, percentEncode } from '../../../support/ecs-emulator/signature.js';

/**
 * Request signing, checked against the real SDK's signer: the emulator must accept what
 * @alicloud/ecs20140526 signs (V3 by default, HMAC-SHA1 in v2 mode) and reject anything
 * signed with another secret or altered after signing.
 */

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

function client(endpoint: string, config: Record<string, unknown> = {}) {
  return new ecs.default(
    new openapi.Config({
      accessKeyId: 'AKID',
      accessKeySecret: 'secret',
      endpoint,
      protocol: 'http',
      ...config,
    }),
  );
}

function describeDisks() {
  return new ecs.DescribeDisksRequest({
    regionId: 'cn-hangzhou',
    diskIds: JSON.stringify(['d-1', 'd 2*']),
  });
}

async function codeOf(
  promise: Promise<unknown>,
): Promise<{ code: string; statusCode: number; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code: string; statusCode: number; message: string };
  }
  throw new Error('the call succeeded');
}

function send(
  port: number,
  request: Recorded,
): Promise<{ status: number; body: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(text) as Record<string, string>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('ECS request signatures (emulator vs the SDK signer)', function () {
  let emulator: EcsEmulator;
  let recorder: http.Server;
  let recorded: Recorded[];

  before(async function () {
    emulator = await new EcsEmulator({
      credentials: {
        AKID: { accessKeySecret: 'secret' },
        STSID: { accessKeySecret: 'sts-secret', securityToken: 'token-1' },
      },
    }).start();
    recorded = [];
    recorder = http.createServer((req, res) => {
      recorded.push({ method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ RequestId: 'recorded', Disks: { Disk: [] } }));
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
  });

  after(async function () {
    await emulator?.stop();
    recorder?.closeAllConnections();
    await new Promise((resolve) => recorder?.close(resolve));
  });

  async function recordOne(): Promise<Recorded> {
    recorded = [];
    await client(`127.0.0.1:${(recorder.address() as AddressInfo).port}`).describeDisks(
      describeDisks(),
    );
    return recorded[0]!;
  }

  it('accepts V3 ACS3-HMAC-SHA256 requests signed with the right secret', async function () {
    const response = await client(emulator.endpoint).describeDisks(describeDisks());
    expect(response.statusCode).to.equal(200);
    expect(response.body?.requestId).to.match(/^[0-9A-F-]{36}$/);
  });

  it('rejects a request signed with a wrong secret with ECS error JSON', async function () {
    const error = await codeOf(
      client(emulator.endpoint, { accessKeySecret: 'not-the-secret' }).describeDisks(
        describeDisks(),
      ),
    );
    expect(error.code).to.equal('SignatureDoesNotMatch');
    expect(error.statusCode).to.equal(400);
    expect(error.message).to.include('Specified signature is not matched with our calculation');
  });

  it('rejects an unknown access key id', async function () {
    const error = await codeOf(
      client(emulator.endpoint, { accessKeyId: 'NOBODY' }).describeDisks(describeDisks()),
    );
    expect(error.code).to.equal('InvalidAccessKeyId.NotFound');
    expect(error.statusCode).to.equal(404);
  });

  it('accepts the legacy HMAC-SHA1 scheme and rejects it with a wrong secret', async function () {
    const ok = await client(emulator.endpoint, { signatureAlgorithm: 'v2' }).describeDisks(
      describeDisks(),
    );
    expect(ok.statusCode).to.equal(200);
    const error = await codeOf(
      client(emulator.endpoint, {
        signatureAlgorithm: 'v2',
        accessKeySecret: 'wrong',
      }).describeDisks(describeDisks()),
    );
    expect(error.code).to.equal('SignatureDoesNotMatch');
  });

  it('requires the STS token that belongs to temporary credentials', async function () {
    const sts = { accessKeyId: 'STSID', accessKeySecret: 'sts-secret' };
    const ok = await client(emulator.endpoint, { ...sts, securityToken: 'token-1' }).describeDisks(
      describeDisks(),
    );
    expect(ok.statusCode).to.equal(200);
    const error = await codeOf(
      client(emulator.endpoint, { ...sts, securityToken: 'token-2' }).describeDisks(
        describeDisks(),
      ),
    );
    expect(error.code).to.equal('InvalidSecurityToken.Mismatch');
  });

  it('accepts a recorded SDK request once, then refuses its replay (nonce reuse)', async function () {
    const request = await recordOne();
    expect(request.headers.authorization).to.match(
      /^ACS3-HMAC-SHA256 Credential=AKID,SignedHeaders=host;/,
    );
    expect(request.url).to.not.match(/Action=|Version=/);
    expect((await send(emulator.port, request)).status).to.equal(200);
    const replay = await send(emulator.port, request);
    expect(replay.status).to.equal(400);
    expect(replay.body.Code).to.equal('SignatureNonceUsed');
  });

  it('rejects a signed request whose query or action was altered afterwards', async function () {
    const request = await recordOne();
    const query = await send(emulator.port, {
      ...request,
      url: request.url.replace('RegionId=cn-hangzhou', 'RegionId=cn-beijing'),
    });
    expect(query.body.Code).to.equal('SignatureDoesNotMatch');
    const other = await recordOne();
    const action = await send(emulator.port, {
      ...other,
      headers: { ...other.headers, 'x-acs-action': 'DeleteDisk' },
    });
    expect(action.body.Code).to.equal('SignatureDoesNotMatch');
    const third = await recordOne();
    const headers = { ...third.headers };
    delete headers.authorization;
    const unsigned = await send(emulator.port, { ...third, headers });
    expect(unsigned.body.Code).to.equal('IncompleteSignature');
  });

  it('rejects a request whose timestamp is far from the server clock', async function () {
    const skewed = await new EcsEmulator({
      credentials: { AKID: { accessKeySecret: 'secret' } },
      now: () => Date.now() + 3600_000,
    }).start();
    try {
      const error = await codeOf(client(skewed.endpoint).describeDisks(describeDisks()));
      expect(error.code).to.equal('InvalidTimeStamp.Expired');
    } finally {
      await skewed.stop();
    }
  });

  it('canonicalizes query values with RFC 3986 percent-encoding, sorted by key', function () {
    expect(percentEncode("a b*c~d!'()")).to.equal('a%20b%2Ac~d%21%27%28%29');
    expect(canonicalQueryString({ b: '2', 'Tag.1.Key': 'k v', a: '' })).to.equal(
      'Tag.1.Key=k%20v&a=&b=2',
    );
  });
});
