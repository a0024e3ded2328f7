import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { LocalBackend } from '../../../src/driver/backends/local/backend.js';
import { runCommand } from '../../../src/driver/backends/local/system.js';
import { silentLogger } from '../../../src/observability/logger.js';
import { repoRoot, tool } from '../../support/tools.js';
import {
  cleanupScratch,
  idOf,
  mountCapability,
  MiB,
  scratchDir,
  spawnLocalDriver,
  testNode,
  type DriverProcess,
} from './local-support.js';

const openBackend = (root: string) =>
  LocalBackend.open({
    root,
    nodeId: testNode,
    onlineResize: false,
    vendorVersion: 'test',
    run: runCommand,
    logger: silentLogger(),
  });

describe('local backend: one driver per root', function () {
  this.timeout(180_000);
  let dir: string;
  let root: string;
  const opened: LocalBackend[] = [];
  let driver: DriverProcess | undefined;

  beforeEach(function () {
    dir = scratchDir('lock');
    root = path.join(dir, 'root');
  });

  afterEach(async function () {
    for (const backend of opened.splice(0)) await backend.close();
    await driver?.stop();
    driver = undefined;
    cleanupScratch(dir);
  });

  it("refuses a second backend on a root in use, naming the holder's pid, and leaves the first one's work alone", async function () {
    opened.push(await openBackend(root));
    // A copy the first backend has under way: a second one's start-up clean-up would remove it.
    const copy = path.join(root, 'tmp', 'disk-busy-1-1.img');
    writeFileSync(copy, 'copy in progress');
    let refusal: unknown;
    try {
      opened.push(await openBackend(root));
    } catch (error) {
      refusal = error;
    }
    expect(refusal, 'the second open').to.be.instanceOf(Error);
    expect((refusal as Error).message).to.match(
      new RegExp(`^the root ${root} of the local backend is locked by pid ${process.pid} on host `),
    );
    expect((refusal as Error).message).to.match(
      /stop the other driver or give this one another --root$/,
    );
    expect(existsSync(copy), 'the copy in progress').to.equal(true);

    // Released on close: the root can be opened again.
    await opened.shift()!.close();
    opened.push(await openBackend(root));
  });

  it('a second `snapback driver` on the same root exits 1 with a one-line reason; the first keeps serving', async function () {
    driver = await spawnLocalDriver({ dir, root, socket: path.join(dir, 'csi.sock') });
    await driver.client.controller.createVolume({
      name: 'kept',
      capacity_range: { required_bytes: String(64 * MiB) },
      volume_capabilities: [mountCapability],
    });
    const before = readdirSync(path.join(root, 'disks')).sort();
    const secondSocket = path.join(dir, 'second', 'csi.sock');
    mkdirSync(path.dirname(secondSocket));
    const second = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx/esm',
        path.join(repoRoot, 'src/cli/main.ts'),
        'driver',
        '--backend=local',
        `--endpoint=unix://${secondSocket}`,
        `--node-id=${testNode}`,
        `--root=${root}`,
      ],
      {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, SNAPBACK_CSI_PROTO: tool('CSI_PROTO') },
      },
    );
    expect(second.status, `exit status (stderr: ${second.stderr})`).to.equal(1);
    const lines = second.stderr.trim().split('\n');
    expect(lines, second.stderr).to.have.length(1);
    expect(lines[0]).to.match(
      new RegExp(
        `^snapback driver: the root ${root} of the local backend is locked by pid ${driver.pid} `,
      ),
    );
    expect(existsSync(secondSocket), 'the second driver never served').to.equal(false);
    expect(readdirSync(path.join(root, 'disks')).sort()).to.deep.equal(before);
    const listed = await driver.client.controller.listVolumes({});
    expect(listed.entries.map((e) => e.volume?.volume_id)).to.deep.equal([idOf('kept')]);
  });
});
