/**
 * Memory the Kubernetes client allocates per request: snapback's HttpKubeClient (node:https
 * with a keep-alive agent, credentials from its own kubeconfig loader) against undici's fetch
 * and undici's request over the same connection pool, all GETting one small object from a local
 * HTTPS server in this process. Short-lived allocations are what the snapshot stack's peak RSS
 * is made of (see bench/snapshot-stack/README.md): they are promoted and pile up in the old
 * generation between full GCs.
 *
 * Run with a young generation so large that no scavenge happens during a measurement, so the
 * growth of new space is what was allocated:
 *
 *   make bench BENCH=http-alloc ARGS='[--requests=1000]'
 *
 * (the bench re-executes itself with --max-semi-space-size=1024 --min-semi-space-size=1024).
 * Needs openssl for a throw-away certificate. Figures, not assertions.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import * as k8s from '@kubernetes/client-node';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { HttpKubeClient } from '../../src/kube/http-client.js';
import { clusterAccessFromKubeConfig } from '../../src/kube/kubeconfig.js';
import { ConfigMaps } from '../../src/kube/resource.js';
import { numberFlag as flag } from '../support.js';

const REQUESTS = flag('requests', 1000);
const CHILD = 'SNAPBACK_BENCH_HTTP_ALLOC_CHILD';

if (!process.env[CHILD]) {
  const result = spawnSync(
    process.execPath,
    [
      '--max-semi-space-size=1024',
      '--min-semi-space-size=1024',
      '--import',
      'tsx/esm',
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, [CHILD]: '1' } },
  );
  process.exit(result.status ?? 1);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-http-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ],
  { stdio: 'ignore' },
);
const ca = readFileSync(path.join(dir, 'cert.pem'));
const body = JSON.stringify({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'a', namespace: 'ns', uid: 'u', resourceVersion: '1' },
  data: { k: 'v'.repeat(500) },
});
const server = https.createServer(
  { key: readFileSync(path.join(dir, 'key.pem')), cert: ca },
  (_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(body);
  },
);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as { port: number };
const url = `https://127.0.0.1:${port}/api/v1/namespaces/ns/configmaps/a`;
const headers = { authorization: 'Bearer bench-token', accept: 'application/json' };

const kubeConfig = new k8s.KubeConfig();
kubeConfig.loadFromOptions({
  clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: ca.toString('base64') }],
  users: [{ name: 'u', token: 'bench-token' }],
  contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
  currentContext: 'x',
});
const access = clusterAccessFromKubeConfig(kubeConfig);
const client = new HttpKubeClient(access, { qps: 1e6, burst: 1e6 });
const agent = new Agent({ connect: { ca } });

const youngBytes = () =>
  v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;

const figures: Record<string, number> = {};
async function measure(name: string, send: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 50; i++) await send(); // connections, JIT
  const before = youngBytes();
  for (let i = 0; i < REQUESTS; i++) await send();
  figures[name] = Math.round(((youngBytes() - before) / REQUESTS / 1024) * 10) / 10;
  console.log(`${name.padEnd(52)} ${figures[name]!.toFixed(1).padStart(6)} KiB / request`);
}

try {
  await measure('HttpKubeClient.get (node:https)', () => client.get(ConfigMaps, 'a', 'ns'));
  await measure('  of which the credential (ClusterAccess.authorization)', () =>
    access.authorization(),
  );
  await measure('client-node KubeConfig.applySecurityAuthentication', () =>
    kubeConfig.applySecurityAuthentication(new k8s.RequestContext(url, k8s.HttpMethod.GET)),
  );
  await measure('undici fetch + JSON.parse', async () => {
    const response = await undiciFetch(url, { dispatcher: agent, headers });
    JSON.parse(await response.text());
  });
  await measure('undici request + JSON.parse', async () => {
    const response = await request(url, { dispatcher: agent, headers });
    JSON.parse(await response.body.text());
  });
  console.log(`\n${REQUESTS} GETs of a ${body.length}-byte object each, ${process.version}`);
} finally {
  server.close();
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
