import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { connectCsi, type CsiClient } from '../../../src/csi/client.js';
import { toGrpcHandlers } from '../../../src/csi/handlers.js';
import { loadCsi } from '../../../src/csi/proto.js';
import { serveCsi, type CsiServer } from '../../../src/csi/server.js';
import { notFound } from '../../../src/csi/errors.js';
import type { IdentityHandlers } from '../../../src/gen/csi/csi/v1/Identity.js';
import type { NodeHandlers } from '../../../src/gen/csi/csi/v1/Node.js';
import { runCsiSanity } from '../../support/csi-sanity.js';
import type { EcsEmulator } from '../../support/ecs-emulator/emulator.js';
import { isAlive, startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { repoRoot, tool } from '../../support/tools.js';
import { accessKeyId, accessKeySecret, region, startEmulator, zone } from './harness.js';

/**
 * csi-sanity's cleanup asks the Node service for its capabilities even when node specs are
 * skipped. ECS disks are attached by ACK's node plugin, not by this driver, so csi-sanity
 * talks to the driver's controller through -csi.controllerendpoint and to this stand-in
 * for the node plugin through -csi.endpoint: it forwards Identity to the driver and offers
 * no node capability (nothing is ever published on it).
 */
async function serveStandInNode(socket: string, driver: CsiClient): Promise<CsiServer> {
  const protoPath = tool('CSI_PROTO');
  const csi = loadCsi(protoPath).csi.v1;
  const ignore = () => undefined;
  return serveCsi({
    endpoint: `unix://${socket}`,
    protoPath,
    handlers: {
      identity: toGrpcHandlers<IdentityHandlers>(
        'Identity',
        csi.Identity.service,
        {
          GetPluginInfo: (request) => driver.identity.getPluginInfo(request),
          GetPluginCapabilities: (request) => driver.identity.getPluginCapabilities(request),
          Probe: (request) => driver.identity.probe(request),
        },
        ignore,
      ),
      node: toGrpcHandlers<NodeHandlers>(
        'Node',
        csi.Node.service,
        {
          NodeGetCapabilities: async () => ({ capabilities: [] }),
          NodeUnpublishVolume: async (request) => {
            throw notFound(`volume ${request.volume_id} was never published on this stand-in node`);
          },
        },
        ignore,
      ),
    },
  });
}

/**
 * Why csi-sanity skips specs against the alicloud backend: each is a capability the
 * controller does not offer. Node specs are not run at all (`-ginkgo.skip=Node Service`):
 * attaching ECS disks to a node belongs to ACK's node plugin.
 */
const allowedSkipReasons = new Set([
  'ControllerPublishVolume not supported',
  'ControllerUnpublishVolume not supported',
  'Controller Publish, UnpublishVolume not supported',
  'ControllerModifyVolume not supported',
  'Modify Volume not supported',
  'Modify volume not supported',
  'GetCapacity not supported',
  'Volume Cloning not supported',
]);

/** csi-sanity v5.4.0's GroupController specs: run (not skipped) on ECS snapshot-consistent groups. */
const groupControllerSpecs = 6;

describe('csi-sanity against the alicloud backend and the ECS emulator', function () {
  this.timeout(900_000);
  let dir: string;
  let emulator: EcsEmulator;
  let driverPid: number | undefined;
  let driverClient: CsiClient | undefined;
  let standIn: CsiServer | undefined;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-alicloud-sanity-'));
    // csi-sanity snapshots blank volumes it never attaches (attaching is the node plugin's
    // job), which ECS refuses for a disk never attached; this run relaxes that one rule.
    emulator = await startEmulator({ snapshotNeverAttachedDisks: true });
    const socket = path.join(dir, 'csi.sock');
    const logFile = path.join(dir, 'driver.log');
    const driver = startProcess(
      process.execPath,
      [
        '--import',
        'tsx/esm',
        path.join(repoRoot, 'src/cli/main.ts'),
        'driver',
        '--backend=alicloud',
        `--endpoint=unix://${socket}`,
        `--region=${region}`,
        `--zone=${zone}`,
        `--ecs-endpoint=${emulator.endpoint}`,
        '--ecs-protocol=http',
      ],
      {
        logFile,
        owned: true,
        env: {
          ...process.env,
          SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
          ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
          ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret,
        },
      },
    );
    driverPid = driver.pid!;
    const client = connectCsi(`unix://${socket}`, { protoPath: tool('CSI_PROTO') });
    driverClient = client;
    await waitFor(
      async () => {
        if (!isAlive(driverPid!)) throw new Error('the driver exited');
        const probe = await client.identity.probe({}, { timeoutMs: 1000 });
        return probe.ready?.value === true;
      },
      60_000,
      'the alicloud driver to answer Probe',
      () => readFileSync(logFile, 'utf8').slice(-2000),
    );
    const info = await client.identity.getPluginInfo({});
    expect(info.name).to.equal('diskplugin.csi.alibabacloud.com');
    standIn = await serveStandInNode(path.join(dir, 'node.sock'), client);
  });

  after(async function () {
    await standIn?.stop();
    driverClient?.close();
    if (driverPid !== undefined) await stopProcess(driverPid);
    await emulator?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes the controller, snapshot and group snapshot specs with 0 failures', async function () {
    const parameters = path.join(dir, 'volume-parameters.yaml');
    writeFileSync(parameters, 'type: cloud_essd\nperformanceLevel: PL0\n');
    const result = await runCsiSanity(
      [
        `-csi.endpoint=${path.join(dir, 'node.sock')}`,
        `-csi.controllerendpoint=${path.join(dir, 'csi.sock')}`,
        `-csi.mountdir=${path.join(dir, 'mount')}`,
        `-csi.stagingdir=${path.join(dir, 'staging')}`,
        `-csi.testvolumeparameters=${parameters}`,
        `-csi.testvolumesize=${1024 ** 3}`,
        '-ginkgo.skip=Node Service',
      ],
      path.join(dir, 'csi-sanity.log'),
    );
    const { ran, passed, failed, skipped, skipReasons } = result;
    console.log(
      `      csi-sanity: ran ${ran}, passed ${passed}, failed ${failed}, skipped ${skipped}`,
    );
    expect(failed, result.output.slice(-6000)).to.equal(0);
    expect(passed).to.equal(ran);
    expect(ran).to.be.above(40);
    expect(result.exitCode).to.equal(0);
    const unexpected = [...skipReasons].filter((r) => !allowedSkipReasons.has(r));
    expect(unexpected, 'specs skipped for a reason not listed above').to.deep.equal([]);
    // ginkgo -v prints each spec run as a block between dashed lines: its full name first, and
    // "• [<seconds> seconds]" when it passed.
    const groupSpecsPassed = result.output
      .split(/^-{30}$/m)
      .map((block) => block.trim())
      .filter((block) => block.startsWith('GroupController Service'))
      .filter((block) => /^• \[[\d.]+ seconds\]$/m.test(block));
    expect(groupSpecsPassed, 'GroupController specs that passed').to.have.length(
      groupControllerSpecs,
    );
    // Everything csi-sanity created went through ECS and was cleaned up through ECS.
    expect(emulator.callCount('CreateSnapshot', { succeeded: true })).to.be.above(0);
    expect(emulator.model.snapshots.size).to.equal(0);
    expect(emulator.model.disks.size).to.equal(0);
  });
});
