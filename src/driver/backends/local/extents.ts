import type { CommandRunner } from './system.js';

/** A byte range [start, end) of a file that holds data; everything else reads as zeros. */
export interface Extent {
  start: number;
  end: number;
}

/**
 * The data extents in `filefrag -v` output (FIEMAP). Unwritten (preallocated) extents read
 * as zeros, so they count as holes. Returns undefined when the output is not understood.
 */
export function parseFilefrag(output: string): Extent[] | undefined {
  const blockSize = /blocks of (\d+) bytes/.exec(output)?.[1];
  if (!blockSize) return undefined;
  const unit = Number(blockSize);
  const extents: Extent[] = [];
  for (const line of output.split('\n')) {
    const match = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):(.*)$/.exec(line);
    if (!match) continue;
    const flags = match[3]!.split(':').at(-1) ?? '';
    if (/\bunwritten\b/.test(flags)) continue;
    const start = Number(match[1]) * unit;
    const end = (Number(match[2]) + 1) * unit;
    const last = extents.at(-1);
    if (last && last.end >= start) last.end = Math.max(last.end, end);
    else extents.push({ start, end });
  }
  return extents;
}

/**
 * Where `file` holds data. Node has no SEEK_DATA/SEEK_HOLE, so the map comes from FIEMAP via
 * filefrag (after an fsync, -s, so delayed allocations are placed). On a file system without
 * FIEMAP the whole file is one extent: slower, still correct.
 */
export async function dataExtents(
  run: CommandRunner,
  file: string,
  sizeBytes: number,
): Promise<Extent[]> {
  if (sizeBytes === 0) return [];
  let output: string;
  try {
    output = await run('filefrag', ['-v', '-s', file]);
  } catch {
    return [{ start: 0, end: sizeBytes }];
  }
  const extents = parseFilefrag(output);
  if (!extents) return [{ start: 0, end: sizeBytes }];
  return extents
    .map((e) => ({ start: e.start, end: Math.min(e.end, sizeBytes) }))
    .filter((e) => e.start < e.end);
}

/** Indexes of the `blockSize` blocks the extents touch, ascending, each once. */
export function blocksOf(extents: Extent[], blockSize: number): number[] {
  const blocks: number[] = [];
  for (const extent of extents) {
    const first = Math.floor(extent.start / blockSize);
    const last = Math.ceil(extent.end / blockSize) - 1;
    for (let b = Math.max(first, (blocks.at(-1) ?? -1) + 1); b <= last; b++) blocks.push(b);
  }
  return blocks;
}
