import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../../support/tools.js';

/**
 * No snapback command loads @kubernetes/client-node at start-up (about 80 MiB resident by itself,
 * see bench/idle): the API client has its own kubeconfig loader and HTTP transport, and only
 * pods/exec (BackupPolicy hooks) imports client-node, on its first exec. A fresh Node.js process
 * records every module it loads (module.registerHooks).
 */
describe('CLI: modules loaded at start-up', function () {
  this.timeout(60_000);

  const script = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});
const clientNode = () => loaded.filter((u) => u.includes('/node_modules/@kubernetes/client-node/')).length;
for (const command of ['controller', 'all-in-one', 'driver', 'registrar']) {
  await import('./src/cli/' + command + '.ts');
}
const { loadClusterAccess } = await import('./src/kube/kubeconfig.ts');
const { KubeClients } = await import('./src/kube/clients.ts');
const clients = new KubeClients({
  cluster: loadClusterAccess({ env: {}, home: '/nonexistent' }),
  qps: 5, burst: 10, host: 'h',
  logger: { child() { return this; }, info() {}, warn() {}, error() {}, debug() {} },
});
clients.http('snapback');
const executor = clients.podExecutor();
const atStart = clientNode();
const result = await executor.exec({ namespace: 'n', pod: 'p', container: 'c', command: ['true'], timeoutMs: 2000 });
process.stdout.write(JSON.stringify({ atStart, afterExec: clientNode(), execError: result.error ?? '' }));
`;

  it('loads no module of @kubernetes/client-node until the first pods/exec', function () {
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx/esm', '--input-type=module', '-e', script],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        env: { ...process.env, SNAPBACK_LOG_LEVEL: 'error', KUBECONFIG: '', HOME: '/nonexistent' },
      },
    );
    const result = JSON.parse(out) as { atStart: number; afterExec: number; execError: string };
    expect(result.atStart, 'client-node modules loaded by the commands and clients').to.equal(0);
    expect(result.afterExec, 'client-node modules once an exec is tried').to.be.greaterThan(0);
    // nothing listens on localhost:8080 here: the exec fails, with a message
    expect(result.execError).to.not.equal('');
  });
});
