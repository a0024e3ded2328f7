import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { isAlive, startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { tool } from '../../support/tools.js';
import {
  cleanupScratch,
  scratchDir,
  spawnLocalDriver,
  type DriverProcess,
} from './local-support.js';

/**
 * Why csi-sanity skips specs against the local backend: each is an optional CSI capability
 * the driver does not offer. README.md ("csi-sanity: skipped tests") lists the same.
 */
const allowedSkipReasons = new Set([
  'ControllerPublishVolume not supported',
  'ControllerUnpublishVolume not supported',
  'Controller Publish, UnpublishVolume not supported',
  'ControllerModifyVolume not supported',
  'Modify Volume not supported',
  'Modify volume not supported',
  'GroupControllerService not supported',
]);

describe('csi-sanity against the local backend', function () {
  this.timeout(900_000);
  let dir: string;
  let driver: DriverProcess | undefined;

  before(async function () {
    dir = scratchDir('sanity');
    driver = await spawnLocalDriver({
      dir,
      root: path.join(dir, 'root'),
      socket: path.join(dir, 'csi.sock'),
    });
  });

  after(async function () {
    await driver?.stop();
    cleanupScratch(dir);
  });

  it('passes with 0 failures, skipping only specs of capabilities the driver does not offer', async function () {
    const log = path.join(dir, 'csi-sanity.log');
    const sanity = startProcess(
      tool('CSI_SANITY'),
      [
        `-csi.endpoint=${path.join(dir, 'csi.sock')}`,
        `-csi.mountdir=${path.join(dir, 'mount')}`,
        `-csi.stagingdir=${path.join(dir, 'staging')}`,
        `-csi.testvolumesize=${1024 ** 3}`,
        '-ginkgo.v',
        '-ginkgo.no-color',
      ],
      { logFile: log, owned: true },
    );
    const exitCode = new Promise<number | null>((resolve) => sanity.once('exit', resolve));
    const pid = sanity.pid!;
    try {
      await waitFor(
        () => !isAlive(pid),
        840_000,
        'csi-sanity to finish',
        () => readFileSync(log, 'utf8').slice(-3000),
      );
    } finally {
      if (isAlive(pid)) await stopProcess(pid);
    }
    const output = readFileSync(log, 'utf8');
    const summary =
      /Ran (\d+) of (\d+) Specs.*\n.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(
        output,
      );
    expect(summary, `no csi-sanity summary in:\n${output.slice(-3000)}`).not.to.equal(null);
    const [, ran, , passed, failed] = summary!.map(Number);
    expect(failed, output.slice(-5000)).to.equal(0);
    expect(passed).to.equal(ran);
    expect(await exitCode).to.equal(0);
    const skipReasons = new Set(
      [...output.matchAll(/^\s+\[SKIPPED\] (?!in \[)(.+)$/gm)].map((m) => m[1]!.trim()),
    );
    expect(skipReasons.size, 'skip reasons parsed from the log').to.be.above(0);
    const unexpected = [...skipReasons].filter((r) => !allowedSkipReasons.has(r));
    expect(unexpected, 'specs skipped for a reason README.md does not list').to.deep.equal([]);
  });
});
