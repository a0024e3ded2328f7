import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, type FileHandle, open, stat } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

import { DiskError, resourceExhausted } from '../../../csi/errors.js';
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
  /**
   * Called once every block of the source has been read and its copy written, before the
   * copy is flushed: the source may change from then on (a frozen file system can be thawed).
   */
  sourceRead?: () => Promise<void>;
}

export interface CopyResult {
  checksum: string;
  /** Bytes of data (non-zero blocks) the copy holds. */
  dataBytes: number;
  sourceBytes: number;
  /** The copy shares the source's extents (no data was written). */
  reflinked: boolean;
  /** Seconds spent copying (and checksumming), up to the final flush. */
  copySeconds: number;
  /** Seconds the final fsync of the copy took. */
  syncSeconds: number;
}

/** A copy's timings, rounded for a log line. */
export const copyFigures = (
  result: CopyResult & { frozenSeconds?: number },
): Record<string, number | boolean> => ({
  copySeconds: Math.round(result.copySeconds * 1000) / 1000,
  syncSeconds: Math.round(result.syncSeconds * 1000) / 1000,
  ...(result.frozenSeconds !== undefined && { frozenSeconds: result.frozenSeconds }),
  reflinked: result.reflinked,
});

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
  const started = performance.now();
  try {
    await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
  } catch (error) {
    if (noReflink.has((error as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw error;
  }
  const { checksum, dataBytes } = await checksumOf(run, source);
  await options.sourceRead?.();
  if (options.expectedChecksum !== undefined && checksum !== options.expectedChecksum) {
    throw corrupt(source, checksum, options.expectedChecksum);
  }
  const output = await open(target, 'r+');
  let copied: number;
  try {
    await output.truncate(Math.max(options.targetBytes ?? sourceBytes, sourceBytes));
    copied = performance.now();
    await output.sync();
  } finally {
    await output.close();
  }
  return {
    checksum,
    dataBytes,
    sourceBytes,
    reflinked: true,
    copySeconds: (copied - started) / 1000,
    syncSeconds: (performance.now() - copied) / 1000,
  };
}

const corrupt = (source: string, actual: string, expected: string): DiskError =>
  new DiskError(
    'INTERNAL',
    `${source} is corrupt: its content checksum ${actual} differs from the recorded ${expected}`,
  );

/**
 * Blocks buffered at once: reads ahead in flight, the one being checksummed, and writes not
 * yet done. One 1 MiB block per read, in order, keeps the kernel's own readahead working when
 * the source is not in memory; measured on bench/local-backend, bigger or more concurrent
 * reads made cold copies slower and warm ones no faster.
 */
export const bufferedBlocks = 4;
/**
 * A copy is flushed (fdatasync, not awaited) every time this many bytes have been written
 * since the last flush started, so the disk writes back while the copy goes on and the
 * final fsync has little left to do.
 */
const flushEveryBytes = 128 * copyBlockBytes;

interface ReadBlock {
  index: number;
  data: Buffer;
  /** The buffer is read into again once `done` settles (the block's write). */
  release(done: Promise<unknown>): void;
}

/**
 * Reads the given 1 MiB blocks of `input` in order, keeping the next reads in flight while
 * the caller works on the current one. A buffer is reused only after the promise its previous
 * block was released with has settled; a rejection of it fails the read waiting on it.
 */
async function* readAhead(
  input: FileHandle,
  sizeBytes: number,
  blocks: number[],
): AsyncGenerator<ReadBlock> {
  const buffers = Array.from({ length: bufferedBlocks }, () => Buffer.allocUnsafe(copyBlockBytes));
  const free: Promise<unknown>[] = buffers.map(() => Promise.resolve());
  const reads = new Map<number, Promise<Buffer>>();
  const startRead = (i: number): void => {
    const slot = i % bufferedBlocks;
    const offset = blocks[i]! * copyBlockBytes;
    const length = Math.min(copyBlockBytes, sizeBytes - offset);
    const read = free[slot]!.then(async () => {
      const { bytesRead } = await input.read(buffers[slot]!, 0, length, offset);
      return buffers[slot]!.subarray(0, bytesRead);
    });
    // Awaited below in turn, or abandoned when the caller stops early.
    read.catch(() => undefined);
    reads.set(i, read);
  };
  for (let i = 0; i < Math.min(bufferedBlocks - 1, blocks.length); i++) startRead(i);
  for (let i = 0; i < blocks.length; i++) {
    if (i + bufferedBlocks - 1 < blocks.length) startRead(i + bufferedBlocks - 1);
    const data = await reads.get(i)!;
    reads.delete(i);
    let done: Promise<unknown> = Promise.resolve();
    yield { index: blocks[i]!, data, release: (after) => (done = after) };
    free[i % bufferedBlocks] = done;
  }
}

const isZero = (data: Buffer): boolean => data.equals(zeros.subarray(0, data.length));

/**
 * Copies `source` into a new file `target`: a reflink where the file system has them,
 * otherwise reading only the source's data extents and writing only non-zero blocks, so the
 * copy is as sparse as the source (or sparser). Reads, checksumming and writes overlap, and
 * the copy is flushed as it goes; the content checksum is computed on the way, and the
 * target is fsynced before this resolves.
 */
export async function copySparse(
  run: CommandRunner,
  source: string,
  target: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const started = performance.now();
  const sourceBytes = (await stat(source)).size;
  const reflinked = await reflinkCopy(run, source, target, sourceBytes, options);
  if (reflinked) return reflinked;
  const targetBytes = Math.max(options.targetBytes ?? sourceBytes, sourceBytes);
  const blocks = blocksOf(await dataExtents(run, source, sourceBytes), copyBlockBytes);
  const checksum = new ContentChecksum();
  const input = await open(source, 'r');
  let output: FileHandle;
  try {
    output = await open(target, 'wx', 0o600);
  } catch (error) {
    await input.close();
    throw error;
  }
  let dataBytes = 0;
  let unflushedBytes = 0;
  let flushing: Promise<void> | undefined;
  const writes: Promise<unknown>[] = [];
  let writeCount = 0;
  try {
    await output.truncate(targetBytes);
    for await (const { index, data, release } of readAhead(input, sourceBytes, blocks)) {
      if (isZero(data)) continue;
      checksum.add(index, data);
      const written = output.write(data, 0, data.length, index * copyBlockBytes);
      written.catch(() => undefined);
      release(written);
      // A write older than the last few has been awaited by the read that reused its buffer.
      writes[writeCount++ % bufferedBlocks] = written;
      dataBytes += data.length;
      unflushedBytes += data.length;
      if (unflushedBytes >= flushEveryBytes && !flushing) {
        unflushedBytes = 0;
        flushing = output.datasync().finally(() => (flushing = undefined));
        flushing.catch(() => undefined);
      }
    }
    await Promise.all(writes);
    await options.sourceRead?.();
    const value = checksum.value();
    if (options.expectedChecksum !== undefined && value !== options.expectedChecksum) {
      throw corrupt(source, value, options.expectedChecksum);
    }
    const copied = performance.now();
    await flushing;
    await output.sync();
    return {
      checksum: value,
      dataBytes,
      sourceBytes,
      reflinked: false,
      copySeconds: (copied - started) / 1000,
      syncSeconds: (performance.now() - copied) / 1000,
    };
  } catch (error) {
    if (isENOSPC(error)) {
      throw resourceExhausted(`no space left to copy ${source}: ${(error as Error).message}`);
    }
    throw error;
  } finally {
    // Settles what is still in flight after a failure before the handles close.
    await Promise.allSettled([...writes, flushing]);
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
    for await (const { index, data } of readAhead(input, size, blocks)) {
      if (isZero(data)) continue;
      checksum.add(index, data);
      dataBytes += data.length;
    }
  } finally {
    await input.close();
  }
  return { checksum: checksum.value(), dataBytes };
}
