import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadClusterAccess, readKubeconfig, selectContext } from '../../../src/kube/kubeconfig.js';
import { repoRoot } from '../../support/tools.js';

const CA = Buffer.from('-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n');

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'work',
    contexts: [{ name: 'work', context: { cluster: 'c1', user: 'u1' } }],
    clusters: [{ name: 'c1', cluster: { server: 'https://127.0.0.1:6443/', ...cluster } }],
    users: [{ name: 'u1', user }],
  };
}

describe('kube: kubeconfig loading', function () {
  let dir: string;
  const write = (name: string, doc: object | string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, typeof doc === 'string' ? doc : stringify(doc));
    return file;
  };

  beforeEach(function () {
    dir = mkdtempSync(path.join(tmpdir(), 'kubeconfig-'));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the server, CA data and a bearer token of the current context', async function () {
    const file = write(
      'config',
      kubeconfig({ token: 't0ken' }, { 'certificate-authority-data': CA.toString('base64') }),
    );
    const access = loadClusterAccess({ file, env: {} });
    expect(access.server).to.equal('https://127.0.0.1:6443');
    expect(access.tls.ca?.equals(CA)).to.equal(true);
    expect(access.tls.rejectUnauthorized).to.equal(true);
    expect(await access.authorization()).to.equal('Bearer t0ken');
  });

  it('resolves certificate and key files relative to the kubeconfig, and honours insecure-skip-tls-verify', function () {
    writeFileSync(path.join(dir, 'client.crt'), 'CERT');
    writeFileSync(path.join(dir, 'client.key'), 'KEY');
    const file = write(
      'config',
      kubeconfig(
        { 'client-certificate': 'client.crt', 'client-key': 'client.key' },
        { 'insecure-skip-tls-verify': true, 'tls-server-name': 'kubernetes' },
      ),
    );
    const access = loadClusterAccess({ file, env: {} });
    expect(access.tls.cert?.toString()).to.equal('CERT');
    expect(access.tls.key?.toString()).to.equal('KEY');
    expect(access.tls.rejectUnauthorized).to.equal(false);
    expect(access.tls.servername).to.equal('kubernetes');
  });

  it('takes every file of KUBECONFIG, the first to name an entry winning', async function () {
    const first = write('a', {
      'current-context': 'work',
      contexts: [{ name: 'work', context: { cluster: 'c1', user: 'u1' } }],
      users: [{ name: 'u1', user: { token: 'from-a' } }],
    });
    const second = write('b', {
      'current-context': 'other',
      contexts: [{ name: 'other', context: { cluster: 'c2', user: 'u2' } }],
      clusters: [{ name: 'c1', cluster: { server: 'https://10.0.0.1' } }],
      users: [{ name: 'u1', user: { token: 'from-b' } }],
    });
    const access = loadClusterAccess({ env: { KUBECONFIG: `${first}${path.delimiter}${second}` } });
    expect(access.server).to.equal('https://10.0.0.1');
    expect(await access.authorization()).to.equal('Bearer from-a');
  });

  it("uses ~/.kube/config, then the pod's service account, then localhost:8080", async function () {
    const home = path.join(dir, 'home');
    const sa = path.join(dir, 'sa');
    expect(loadClusterAccess({ env: {}, home }).server).to.equal('http://localhost:8080');

    mkdirSync(sa);
    writeFileSync(path.join(sa, 'ca.crt'), CA);
    writeFileSync(path.join(sa, 'token'), 'sa-token\n');
    const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
    const inCluster = loadClusterAccess({ env, home, serviceAccountDir: sa });
    expect(inCluster.server).to.equal('https://[fd00::1]:443');
    expect(inCluster.tls.ca?.equals(CA)).to.equal(true);
    expect(await inCluster.authorization()).to.equal('Bearer sa-token');

    mkdirSync(path.join(home, '.kube'), { recursive: true });
    writeFileSync(path.join(home, '.kube', 'config'), stringify(kubeconfig({ token: 'home' })));
    expect(await loadClusterAccess({ env, home, serviceAccountDir: sa }).authorization()).to.equal(
      'Bearer home',
    );
  });

  it('reads a token file again once it is a minute old (projected tokens rotate)', async function () {
    const token = path.join(dir, 'token');
    writeFileSync(token, 'one');
    const access = loadClusterAccess({ file: write('config', kubeconfig({ tokenFile: token })) });
    const realNow = Date.now;
    try {
      expect(await access.authorization()).to.equal('Bearer one');
      writeFileSync(token, 'two');
      expect(await access.authorization()).to.equal('Bearer one');
      Date.now = () => realNow() + 61_000;
      expect(await access.authorization()).to.equal('Bearer two');
    } finally {
      Date.now = realNow;
    }
  });

  it('runs an exec credential plugin once and keeps its token until it expires', async function () {
    const counter = path.join(dir, 'runs');
    const plugin = path.join(dir, 'plugin.sh');
    writeFileSync(
      plugin,
      [
        '#!/bin/sh',
        `echo x >> ${counter}`,
        'test "$KUBERNETES_EXEC_INFO" != "" || exit 3',
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s-%s"}}' "$PREFIX" "$1"`,
      ].join('\n'),
    );
    chmodSync(plugin, 0o755);
    const file = write(
      'config',
      kubeconfig({
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: './plugin.sh',
          args: ['arg'],
          env: [{ name: 'PREFIX', value: 'exec' }],
        },
      }),
    );
    const access = loadClusterAccess({ file });
    const [a, b] = await Promise.all([access.authorization(), access.authorization()]);
    expect([a, b, await access.authorization()]).to.deep.equal([
      'Bearer exec-arg',
      'Bearer exec-arg',
      'Bearer exec-arg',
    ]);
    expect(readFileSync(counter, 'utf8').trim().split('\n')).to.have.length(1);
  });

  it('refuses what it does not support, and broken files, with a message that names them', function () {
    const cases: [object | string, RegExp][] = [
      [kubeconfig({ 'auth-provider': { name: 'oidc' } }), /auth-provider "oidc" is not supported/],
      [kubeconfig({ as: 'admin' }), /impersonation/],
      [kubeconfig({ 'client-certificate-data': 'Q0VSVA==' }), /certificate without a key/],
      [kubeconfig({}, { 'proxy-url': 'http://proxy:3128' }), /proxy-url/],
      [
        kubeconfig({}, { 'certificate-authority': 'missing.crt' }),
        /cannot read the certificate authority .*missing\.crt/,
      ],
      [{ ...kubeconfig({}), 'current-context': 'nope' }, /no context "nope"/],
      [{ contexts: [] }, /no current-context/],
      ['clusters: [', /is not YAML/],
      [{ clusters: {} }, /clusters is not a list/],
    ];
    for (const [doc, message] of cases) {
      const file = write('config', doc);
      expect(() => loadClusterAccess({ file }), JSON.stringify(doc)).to.throw(message);
    }
    expect(() => loadClusterAccess({ file: path.join(dir, 'absent') })).to.throw(
      /cannot read the kubeconfig/,
    );
  });

  it('picks a context other than the current one when asked', function () {
    const doc = kubeconfig({ token: 'x' }) as { contexts: unknown[] };
    doc.contexts.push({ name: 'broken', context: { cluster: 'absent', user: 'u1' } });
    const file = write('config', doc);
    expect(() => selectContext([readKubeconfig(file)], 'broken')).to.throw(
      /context "broken" names no cluster/,
    );
    expect(selectContext([readKubeconfig(file)], 'work').cluster.server).to.equal(
      'https://127.0.0.1:6443/',
    );
  });

  it('loads yaml only once a kubeconfig file is read, not for the in-cluster configuration', function () {
    this.timeout(30_000);
    const sa = path.join(dir, 'sa');
    mkdirSync(sa);
    writeFileSync(path.join(sa, 'ca.crt'), CA);
    writeFileSync(path.join(sa, 'token'), 't');
    const file = write('config', kubeconfig({ token: 't0ken' }));
    // a fresh process: this test file has yaml loaded already
    const script = `
import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
const yamlLoaded = () => Object.keys(cache).some((id) => id.includes('/node_modules/yaml/'));
const { loadClusterAccess } = await import('./src/kube/kubeconfig.ts');
const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
loadClusterAccess({ env, home: '/nonexistent', serviceAccountDir: ${JSON.stringify(sa)} });
const inCluster = yamlLoaded();
loadClusterAccess({ file: ${JSON.stringify(file)}, env: {} });
process.stdout.write(JSON.stringify({ inCluster, fromFile: yamlLoaded() }));
`;
    const result = spawnSync(
      process.execPath,
      ['--import', 'tsx/esm', '--input-type=module', '-e', script],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    expect(result.status, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.equal({ inCluster: false, fromFile: true });
  });
});
