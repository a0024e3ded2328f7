import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  bufferedBlocks,
  checksumOf,
  copyBlockBytes,
  copySparse,
} from '../../../src/driver/backends/local/copy.js';
import { DiskError } from '../../../src/csi/errors.js';
import { runCommand } from '../../../src/driver/backends/local/system.js';

const MiB = copyBlockBytes;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A sparse image whose layout exercises the copy: a run of data blocks longer than the reads
 * ahead, blocks of zeros written out (allocated, yet holes to the copy), a hole, a lone block,
 * and a partial last block. Returns the sizes a copy must have.
 */
function makeImage(file: string): { sizeBytes: number; dataBytes: number } {
  const sizeBytes = 37 * MiB + 123 * 1024;
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    writeSync(fd, randomBytes(MiB), 0, MiB, 0);
    writeSync(fd, Buffer.alloc(2 * MiB), 0, 2 * MiB, MiB);
    writeSync(fd, randomBytes(10 * MiB), 0, 10 * MiB, 3 * MiB);
    writeSync(fd, randomBytes(100), 0, 100, 31 * MiB + 5000);
    writeSync(fd, randomBytes(123 * 1024), 0, 123 * 1024, 37 * MiB);
  } finally {
    closeSync(fd);
  }
  return { sizeBytes, dataBytes: 12 * MiB + 123 * 1024 };
}

describe('local backend: sparse copy', function () {
  this.timeout(60_000);
  let dir: string;
  let source: string;
  let layout: { sizeBytes: number; dataBytes: number };

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-copy-'));
    source = path.join(dir, 'source.img');
    layout = makeImage(source);
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies byte for byte, writes only non-zero blocks, and checksums what it copied', async function () {
    const target = path.join(dir, 'copy.img');
    const result = await copySparse(runCommand, source, target);

    const original = readFileSync(source);
    const copy = readFileSync(target);
    expect(copy.length).to.equal(layout.sizeBytes);
    expect(sha256(copy)).to.equal(sha256(original));
    expect(result.dataBytes).to.equal(layout.dataBytes);
    expect(result.sourceBytes).to.equal(layout.sizeBytes);
    // The zeros written out in the source and its hole take no space in the copy.
    expect(statSync(target).blocks * 512).to.be.at.most(layout.dataBytes + MiB);
    // The data spans more blocks than the copy keeps buffers for, so buffers were reused.
    expect(layout.dataBytes / MiB).to.be.greaterThan(2 * bufferedBlocks);

    expect(result.checksum).to.equal((await checksumOf(runCommand, source)).checksum);
    expect(result.checksum).to.equal((await checksumOf(runCommand, target)).checksum);
    expect(result.copySeconds).to.be.at.least(0);
    expect(result.syncSeconds).to.be.at.least(0);
  });

  it('says when the source has been read, with every block already in the copy, once', async function () {
    const target = path.join(dir, 'copy.img');
    const seen: string[] = [];
    await copySparse(runCommand, source, target, {
      sourceRead: async () => {
        seen.push(sha256(readFileSync(target)));
      },
    });
    expect(seen).to.deep.equal([sha256(readFileSync(source))]);
  });

  it('grows the copy to a larger target size, the tail reading as zeros', async function () {
    const target = path.join(dir, 'grown.img');
    const targetBytes = 64 * MiB;
    const result = await copySparse(runCommand, source, target, { targetBytes });
    const copy = readFileSync(target);
    expect(copy.length).to.equal(targetBytes);
    expect(sha256(copy.subarray(0, layout.sizeBytes))).to.equal(sha256(readFileSync(source)));
    const tail = copy.subarray(layout.sizeBytes);
    expect(tail.length).to.equal(targetBytes - layout.sizeBytes);
    expect(tail.equals(Buffer.alloc(tail.length)), 'the grown tail is zeros').to.equal(true);
    // Growing adds no data, so the content checksum is the source's.
    expect(result.checksum).to.equal((await checksumOf(runCommand, source)).checksum);
  });

  it('fails a copy whose source does not match the expected checksum', async function () {
    const { checksum } = await checksumOf(runCommand, source);
    const fd = openSync(source, 'r+');
    writeSync(fd, Buffer.from('flipped'), 0, 7, 4 * MiB + 17);
    closeSync(fd);
    const error = await copySparse(runCommand, source, path.join(dir, 'restored.img'), {
      expectedChecksum: checksum,
    }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(DiskError);
    expect((error as DiskError).code).to.equal('INTERNAL');
    expect((error as DiskError).message).to.match(/is corrupt: its content checksum .* differs/);
  });

  it('never overwrites an existing target', async function () {
    const target = path.join(dir, 'taken.img');
    writeFileSync(target, 'keep me');
    const error = await copySparse(runCommand, source, target).catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).to.equal('EEXIST');
    expect(readFileSync(target, 'utf8')).to.equal('keep me');
  });
});
