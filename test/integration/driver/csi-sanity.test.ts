import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { runCsiSanity } from '../../support/csi-sanity.js';
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
]);

/** csi-sanity v5.4.0's GroupController specs: run (not skipped) now that groups are offered. */
const groupControllerSpecs = 6;

describe('csi-sanity against the local backend', function () {
  this.timeout(900_000);
  let dir: string;
  let driver: DriverProcess | undefined;
  // csi-sanity's target and staging directories lie below it, as kubelet's do below its own.
  let kubeletDir: string;

  before(async function () {
    dir = scratchDir('sanity');
    kubeletDir = path.join(dir, 'kubelet');
    // csi-sanity makes its directories with mkdir, not mkdir -p.
    mkdirSync(kubeletDir);
    driver = await spawnLocalDriver({
      dir,
      root: path.join(dir, 'root'),
      socket: path.join(dir, 'csi.sock'),
      kubeletDir,
    });
  });

  after(async function () {
    await driver?.stop();
    cleanupScratch(dir);
  });

  it('passes with 0 failures, skipping only specs of capabilities the driver does not offer', async function () {
    const result = await runCsiSanity(
      [
        `-csi.endpoint=${path.join(dir, 'csi.sock')}`,
        `-csi.mountdir=${path.join(kubeletDir, 'mount')}`,
        `-csi.stagingdir=${path.join(kubeletDir, 'staging')}`,
        `-csi.testvolumesize=${1024 ** 3}`,
      ],
      path.join(dir, 'csi-sanity.log'),
    );
    expect(result.failed, result.output.slice(-5000)).to.equal(0);
    expect(result.passed).to.equal(result.ran);
    expect(result.exitCode).to.equal(0);
    const { skipReasons } = result;
    expect(skipReasons.size, 'skip reasons parsed from the log').to.be.above(0);
    const unexpected = [...skipReasons].filter((r) => !allowedSkipReasons.has(r));
    expect(unexpected, 'specs skipped for a reason README.md does not list').to.deep.equal([]);
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
  });
});
