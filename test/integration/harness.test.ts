import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  reapOrphans,
  runRegistryDir,
  startControlPlane,
  type ControlPlaneState,
} from '../support/control-plane.js';
import { isAlive, waitFor } from '../support/processes.js';
import { repoRoot } from '../support/tools.js';

const tsx = ['--import', 'tsx/esm'];

/** Starts start-and-wait.ts in a child process and resolves with the control plane it printed. */
function startChildControlPlane() {
  const child = spawn(
    process.execPath,
    [...tsx, path.join(repoRoot, 'test/support/start-and-wait.ts')],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const state = new Promise<ControlPlaneState>((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as ControlPlaneState);
    });
    child.once('exit', (code) =>
      reject(new Error(`child exited (${code}) before starting: ${stderr}`)),
    );
  });
  return { child, state };
}

function pidsOf(state: ControlPlaneState): number[] {
  return Object.values(state.pids);
}

async function expectAllGone(pids: number[], what: string): Promise<void> {
  await waitFor(
    () => pids.every((pid) => !isAlive(pid)),
    20_000,
    what,
    () => `alive: ${pids.filter(isAlive).join(' ')}`,
  );
}

describe('test harness process hygiene', function () {
  it('stop() leaves none of the processes it started running', async function () {
    const controlPlane = await startControlPlane();
    const pids = controlPlane.pids;
    expect(pids).to.have.length(3);
    expect(pids.every(isAlive)).to.equal(true);
    await controlPlane.stop();
    expect(pids.filter(isAlive)).to.deep.equal([]);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`an interrupted run (${signal}) takes its control plane down with it`, async function () {
      const { child, state } = startChildControlPlane();
      const pids = pidsOf(await state);
      expect(pids.every(isAlive)).to.equal(true);
      child.kill(signal);
      await expectAllGone(pids, `the control plane of a run stopped by ${signal} to exit`);
    });
  }

  it('reaping reads past the test node’s record in the same registry', function () {
    const saved = process.env.SNAPBACK_CACHE;
    const cache = mkdtempSync(path.join(os.tmpdir(), 'snapback-registry-'));
    process.env.SNAPBACK_CACHE = cache;
    try {
      mkdirSync(runRegistryDir(), { recursive: true });
      // a node record whose owner is gone: the node's own clean-up handles it, not reapOrphans
      const record = path.join(runRegistryDir(), 'node.json');
      writeFileSync(record, JSON.stringify({ owner: 2 ** 22 + 1, node: { dir: '/nonexistent' } }));
      expect(reapOrphans()).to.deep.equal([]);
      expect(existsSync(record)).to.equal(true);
    } finally {
      if (saved === undefined) delete process.env.SNAPBACK_CACHE;
      else process.env.SNAPBACK_CACHE = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('a run killed with SIGKILL is reaped by the next start', async function () {
    const { child, state } = startChildControlPlane();
    const pids = pidsOf(await state);
    child.kill('SIGKILL');
    await waitFor(
      () => child.exitCode !== null || child.signalCode !== null,
      10_000,
      'the child to die',
    );
    expect(pids.every(isAlive), 'components outlive a SIGKILLed owner until reaped').to.equal(true);
    expect(reapOrphans()).to.include.members(pids);
    await expectAllGone(pids, 'orphaned components to be reaped');
  });
});

describe('make tools failures', function () {
  let cache: string;
  beforeEach(() => (cache = mkdtempSync(path.join(os.tmpdir(), 'snapback-tools-'))));
  afterEach(() => rmSync(cache, { recursive: true, force: true }));

  function build(env: NodeJS.ProcessEnv) {
    return spawnSync('bash', [path.join(repoRoot, 'tools/build.sh'), 'build', 'csi-test'], {
      env: { ...process.env, SNAPBACK_CACHE: cache, ...env },
      encoding: 'utf8',
      timeout: 120_000,
    });
  }

  it('says in one line that Go is missing', function () {
    const result = build({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
    expect(result.status).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.have.length(1);
    expect(result.stderr).to.match(/^make tools: Go is not installed/);
  });

  it('says in one line that a module download failed, and caches nothing', function () {
    const result = build({
      GOPROXY: 'off',
      GOMODCACHE: path.join(cache, 'empty-modcache'),
      GOFLAGS: '-mod=mod',
    });
    expect(result.status).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.have.length(1);
    expect(result.stderr).to.match(/^make tools: building csi-test failed: .*GOPROXY=off/);
    const listing = spawnSync('ls', ['-A', path.join(cache, 'bin')], { encoding: 'utf8' }).stdout;
    expect(listing.split('\n').filter((f) => f.startsWith('csi-test-'))).to.deep.equal([]);
  });
});
