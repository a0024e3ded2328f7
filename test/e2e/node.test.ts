import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNodeCluster, type NodeCluster } from '../support/node.js';
import { startRegistryProcess } from '../support/registry.js';
import { waitFor } from '../support/processes.js';
import { imageLayoutDir, imageRefs } from '../../tools/image/layout.js';
import { chartDir, helmIn, kubectlWith } from './support.js';

interface PodList {
  items: {
    metadata: { name: string };
    spec: { nodeName?: string };
    status: { phase?: string; containerStatuses?: { name: string; ready: boolean }[] };
  }[];
}

/**
 * The chart installed with its default values on a real node (kubelet, containerd, kube-proxy):
 * its pods run from the images `make image` built, pulled by their published names through the
 * local registry, and kubelet registers the node plugin.
 */
describe('node: helm install with default values on a kubelet', function () {
  this.timeout(600_000);
  const namespace = 'snapback-system';
  let dir = '';
  let cluster: NodeCluster | undefined;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-node-e2e-'));
    cluster = await startNodeCluster({
      owned: true,
      baseDir: dir,
      images: {
        layoutDir: imageLayoutDir(),
        pause: imageRefs().pause,
        startRegistry: startRegistryProcess,
      },
    });
  });

  after(async function () {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('brings the controller replicas and the node plugin (driver + registrar) to Ready, and kubelet lists the driver in CSINode', async function () {
    const kubectl = kubectlWith(cluster!.kubeconfig);
    const helm = helmIn(path.join(dir, 'helm'));
    await helm([
      'install',
      'snapback',
      chartDir,
      '--namespace',
      namespace,
      '--create-namespace',
      '--wait',
      '--timeout=240s',
      '--kubeconfig',
      cluster!.kubeconfig,
    ]);
    let pods: PodList = { items: [] };
    const notReady = () =>
      pods.items.filter((p) => !(p.status.containerStatuses ?? []).every((c) => c.ready));
    await waitFor(
      async () => {
        pods = JSON.parse(await kubectl(['-n', namespace, 'get', 'pods', '-o', 'json'])) as PodList;
        return pods.items.length === 3 && notReady().length === 0;
      },
      180_000,
      'the chart’s three pods to be Ready',
      () =>
        JSON.stringify(
          pods.items.map((p) => ({ name: p.metadata.name, status: p.status })),
          null,
          1,
        ),
    );
    expect(pods.items.map((p) => p.spec.nodeName)).to.deep.equal([
      'snapback-node',
      'snapback-node',
      'snapback-node',
    ]);
    const node = pods.items.find((p) => p.metadata.name.startsWith('snapback-node-'));
    expect(node?.status.containerStatuses?.map((c) => c.name).sort()).to.deep.equal([
      'driver',
      'node-driver-registrar',
    ]);
    const drivers = await waitFor(
      async () => {
        const out = await kubectl([
          'get',
          'csinode',
          'snapback-node',
          '-o',
          'jsonpath={.spec.drivers[*].name}',
        ]);
        return out.includes('local.snapback.dev') ? out : '';
      },
      60_000,
      'kubelet to register local.snapback.dev in CSINode',
    );
    expect(drivers.split(' ')).to.include('local.snapback.dev');
  });
});
