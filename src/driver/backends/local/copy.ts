import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, open, stat } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

import { DiskError, resourceExhausted } from '../../errors.js';
import { blocksOf, dataExtents } from './extents.js';
import type { CommandRunner } from './system.js';

export const copyBlockBytes = 1 << 20;

/** Names the checksum scheme in metadata, so a later change of scheme is detectable. */
export const checksumAlgorithm = 'crc32-per-MiB+sha256';

/**
 * A checksum of a disk image's content that does not depend on how it is stored: each 1 MiB
 * block that is not all zeros contributes (index, CRC-32); holes and zero blocks contribute
 * nothing. So a sparse copy, a copy with zeros written out and the original all agree, and
 * zero ranges cost no hashing. CRC-32 (hardware-assisted in zlib) detects corruption of a
 * block; SHA-256 over the per-block list binds them in order.
 */
export class ContentChecksum {
  private readonly digest = createHash('sha256');
  private readonly entry = Buffer.alloc(12);

  add(blockIndex: number, data: Buffer): void {
    this.entry.writeBigUInt64BE(BigInt(blockIndex), 0);
    this.entry.writeUInt32BE(crc32(data), 8);
    this.digest.update(this.entry);
  }

  value(): string {
    return `${checksumAlgorithm}:${this.digest.digest('hex')}`;
  }
}

export interface CopyOptions {
  /** The target's size; larger than the source grows it (the tail is a hole). */
  targetBytes?: number;
  /** Fail (and leave the target incomplete) when the source's checksum differs. */
  expectedChecksum?: string;
}

export interface CopyResult {
  checksum: string;
  /** Bytes of data (non-zero blocks) the copy holds. */
  dataBytes: number;
  sourceBytes: number;
  /** The copy shares the source's extents (no data was written). */
  reflinked: boolean;
}

const zeros = Buffer.alloc(copyBlockBytes);

function isENOSPC(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Errors of FICLONE on a file system (or pair of files) that cannot share extents. */
const noReflink = new Set([
  'ENOTSUP',
  'EOPNOTSUPP',
  'EXDEV',
  'EINVAL',
  'ENOSYS',
  'ENOTTY',
  'EPERM',
]);

/**
 * On a file system with reflinks (XFS, Btrfs) the copy shares the source's extents: instant,
 * and no space used until either side changes. The checksum still reads the data, so a
 * restore still verifies it. Returns undefined where reflinks are not available.
 */
async function reflinkCopy(
  run: CommandRunner,
  source: string,
  target: string,
  sourceBytes: number,
  options: CopyOptions,
): Promise<CopyResult | undefined> {
  try {
    await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
  } catch (error) {
    if (noReflink.has((error as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw error;
  }
  const { checksum, dataBytes } = await checksumOf(run, source);
  if (options.expectedChecksum !== undefined && checksum !== options.expectedChecksum) {
    throw corrupt(source, checksum, options.expectedChecksum);
  }
  const output = await open(target, 'r+');
  try {
    await output.truncate(Math.max(options.targetBytes ?? sourceBytes, sourceBytes));
    await output.sync();
  } finally {
    await output.close();
  }
  return { checksum, dataBytes, sourceBytes, reflinked: true };
}

const corrupt = (source: string, actual: string, expected: string): DiskError =>
  new DiskError(
    'INTERNAL',
    `${source} is corrupt: its content checksum ${actual} differs from the recorded ${expected}`,
  );

/**
 * Copies `source` into a new file `target`: a reflink where the file system has them,
 * otherwise reading only the source's data extents and writing only non-zero blocks, so the
 * copy is as sparse as the source (or sparser). The content checksum is computed on the way;
 * the target is fsynced before this resolves.
 */
export async function copySparse(
  run: CommandRunner,
  source: string,
  target: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const sourceBytes = (await stat(source)).size;
  const reflinked = await reflinkCopy(run, source, target, sourceBytes, options);
  if (reflinked) return reflinked;
  const targetBytes = Math.max(options.targetBytes ?? sourceBytes, sourceBytes);
  const blocks = blocksOf(await dataExtents(run, source, sourceBytes), copyBlockBytes);
  const checksum = new ContentChecksum();
  const input = await open(source, 'r');
  let output;
  try {
    output = await open(target, 'wx', 0o600);
  } catch (error) {
    await input.close();
    throw error;
  }
  let dataBytes = 0;
  try {
    await output.truncate(targetBytes);
    // Two buffers: the next block is read while the previous one is being written.
    const buffers = [Buffer.allocUnsafe(copyBlockBytes), Buffer.allocUnsafe(copyBlockBytes)];
    let current = 0;
    let writing: Promise<unknown> = Promise.resolve();
    for (const block of blocks) {
      const buffer = buffers[current]!;
      const offset = block * copyBlockBytes;
      const length = Math.min(copyBlockBytes, sourceBytes - offset);
      const { bytesRead } = await input.read(buffer, 0, length, offset);
      const data = buffer.subarray(0, bytesRead);
      if (data.equals(zeros.subarray(0, bytesRead))) continue;
      checksum.add(block, data);
      await writing;
      writing = output.write(data, 0, bytesRead, offset);
      dataBytes += bytesRead;
      current ^= 1;
    }
    await writing;
    const value = checksum.value();
    if (options.expectedChecksum !== undefined && value !== options.expectedChecksum) {
      throw corrupt(source, value, options.expectedChecksum);
    }
    await output.sync();
    return { checksum: value, dataBytes, sourceBytes, reflinked: false };
  } catch (error) {
    if (isENOSPC(error)) {
      throw resourceExhausted(`no space left to copy ${source}: ${(error as Error).message}`);
    }
    throw error;
  } finally {
    await input.close();
    await output.close();
  }
}

/** The content checksum of an image and its bytes of data, without copying it. */
export async function checksumOf(
  run: CommandRunner,
  file: string,
): Promise<{ checksum: string; dataBytes: number }> {
  const size = (await stat(file)).size;
  const blocks = blocksOf(await dataExtents(run, file, size), copyBlockBytes);
  const checksum = new ContentChecksum();
  let dataBytes = 0;
  const input = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(copyBlockBytes);
    for (const block of blocks) {
      const offset = block * copyBlockBytes;
      const length = Math.min(copyBlockBytes, size - offset);
      const { bytesRead } = await input.read(buffer, 0, length, offset);
      const data = buffer.subarray(0, bytesRead);
      if (data.equals(zeros.subarray(0, bytesRead))) continue;
      checksum.add(block, data);
      dataBytes += bytesRead;
    }
  } finally {
    await input.close();
  }
  return { checksum: checksum.value(), dataBytes };
}
