import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ControlPlaneState } from '../support/control-plane.js';
import {
  KUBELET_DIR,
  NODE_NETWORK,
  RUNTIME,
  localNodeImages,
  nodePrerequisiteProblem,
  type NodeState,
} from '../support/node.js';
import { isAlive, waitFor } from '../support/processes.js';
import { repoRoot } from '../support/tools.js';
import { kubectlWith } from './support.js';

function runCli(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx/esm', path.join(repoRoot, 'test/support/cluster-cli.ts'), ...args],
    { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 300_000 },
  );
}

/** What a node leaves on the machine if it is not cleaned up. */
function machineTraces() {
  const rules = (command: string) =>
    execFileSync(command, [], { encoding: 'utf8' })
      .split('\n')
      // counters and the dump's own comments change between two dumps of the same rules
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.replace(/\[\d+:\d+\]$/, ''))
      .join('\n');
  return {
    bridge: spawnSync('ip', ['link', 'show', NODE_NETWORK.bridge]).status === 0,
    netns: existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [],
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter(
        (mountPoint) => mountPoint === KUBELET_DIR || mountPoint.startsWith(`${KUBELET_DIR}/`),
      ),
    iptables: rules('iptables-save'),
    ip6tables: rules('ip6tables-save'),
  };
}

describe('make up / make down: a Ready node, and nothing left behind', function () {
  this.timeout(600_000);
  let upDir: string;
  beforeEach(() => (upDir = mkdtempSync(path.join(os.tmpdir(), 'snapback-up-'))));
  afterEach(() => {
    runCli(['down'], { SNAPBACK_UP_DIR: upDir });
    rmSync(upDir, { recursive: true, force: true });
  });

  it('up prints export KUBECONFIG for a Ready node that runs a pod; a second up is refused in one line; down removes every process, mount, netns, rule and the bridge', async function () {
    const before = machineTraces();
    const first = runCli(['up'], { SNAPBACK_UP_DIR: upDir });
    expect(first.status, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/^export KUBECONFIG=\/\S+kubeconfig\n$/);
    const kubeconfig = first.stdout.trim().replace('export KUBECONFIG=', '');
    const kubectl = kubectlWith(kubeconfig);
    expect(
      await kubectl([
        'get',
        'node',
        NODE_NETWORK.nodeName,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]),
    ).to.equal('True');

    // a pod gives the node something to clean: a sandbox netns, a veth, mounts, NAT rules
    await kubectl(['run', 'web', '--image=nginx', '--restart=Never']);
    await kubectl(['wait', '--for=condition=Ready', 'pod/web', '--timeout=120s']);
    const running = machineTraces();
    expect(running.netns.length).to.be.greaterThan(before.netns.length);
    expect(running.mounts).to.not.deep.equal([]);

    const second = runCli(['up'], { SNAPBACK_UP_DIR: upDir });
    expect(second.status).to.equal(1);
    expect(second.stderr.trim().split('\n')).to.have.length(1);
    expect(second.stderr).to.match(/already running.*make down/);

    const state = JSON.parse(readFileSync(path.join(upDir, 'state.json'), 'utf8')) as {
      controlPlane: ControlPlaneState;
      node: NodeState;
    };
    const pids = [
      ...Object.values(state.controlPlane.pids),
      ...Object.values(state.node.pids),
      state.node.registry.pid,
    ] as number[];
    expect(pids).to.have.length(8);
    expect(pids.every(isAlive)).to.equal(true);

    const down = runCli(['down'], { SNAPBACK_UP_DIR: upDir });
    expect(down.status, down.stderr).to.equal(0);
    await waitFor(
      () => pids.every((pid) => !isAlive(pid)),
      20_000,
      'make down to stop every component',
      () => `alive: ${pids.filter(isAlive).join(' ')}`,
    );
    expect(machineTraces()).to.deep.equal(before);
    expect(readdirSync(upDir), 'no state and no files of the node').to.deep.equal([]);
  });

  it('fails with one line when the API server port is in use, leaving nothing running', async function () {
    const before = machineTraces();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const result = runCli(['up'], { SNAPBACK_UP_DIR: upDir, APISERVER_PORT: String(port) });
      expect(result.status).to.equal(1);
      expect(result.stderr.trim().split('\n')).to.have.length(1);
      expect(result.stderr).to.include(
        `port ${port} on ${NODE_NETWORK.address} (kube-apiserver) is in use`,
      );
      expect(readdirSync(upDir), 'no state and no half-started cluster').to.deep.equal([]);
      expect(machineTraces()).to.deep.equal(before);
    } finally {
      blocker.close();
    }
  });

  it('a machine without a container runtime or images gets a one-line reason naming the fix', function () {
    const images = localNodeImages();
    expect(nodePrerequisiteProblem(images)).to.equal(undefined);
    for (const [runtime, component] of [
      [{ ...RUNTIME, containerd: '/nonexistent/containerd' }, 'containerd'],
      [{ ...RUNTIME, runc: '/nonexistent/runc' }, 'runc'],
      [{ ...RUNTIME, cniBin: '/nonexistent/cni' }, 'CNI bridge plugin'],
    ] as const) {
      const problem = nodePrerequisiteProblem(images, runtime);
      expect(problem).to.match(
        new RegExp(`^${component} is missing \\(/nonexistent/.*make node-deps`),
      );
      expect(problem).to.not.include('\n');
    }
    expect(nodePrerequisiteProblem({ ...images, layoutDir: '/nonexistent/oci' })).to.equal(
      "the node's images are not built (/nonexistent/oci is missing): run `make image`",
    );
  });
});
