import { createReadStream, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A deterministic tar writer for image layers: entries in the order given (treeEntries sorts
 * them), every mtime fixed, numeric owners only (no user or group names), no access times,
 * no extended attributes. The same entries always give the same bytes.
 */

/** Every entry's mtime, so that a layer's digest depends on content alone. */
export const FIXED_MTIME = 0;

interface EntryBase {
  /** The path inside the image, relative to its root, without a leading or trailing slash. */
  path: string;
  /** Permission bits, including setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
}

export type TarEntry =
  | (EntryBase & { type: 'dir' })
  | (EntryBase & { type: 'file'; size: number; source: string })
  | (EntryBase & { type: 'file'; content: Buffer })
  | (EntryBase & { type: 'symlink'; target: string })
  /** A second name for a file written earlier in the same layer; `target` is its path. */
  | (EntryBase & { type: 'hardlink'; target: string });

export interface TreeOptions {
  /**
   * Give every entry this owner and normalised permissions (directories and executable files
   * 0755, other files 0644), as COPY does. Without it the tree's own owners and modes are kept.
   */
  owner?: { uid: number; gid: number };
  /** Leave out the entries whose image path matches one of these (and what is under them). */
  exclude?: readonly RegExp[];
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * The entries for the host directory `hostDir` placed at `imagePath` in the image ('' for the
 * image root), depth first with names sorted bytewise; the directory itself is included
 * unless it is the root. Files with several links within the tree become hard links.
 */
export function treeEntries(
  hostDir: string,
  imagePath: string,
  options: TreeOptions = {},
): TarEntry[] {
  const entries: TarEntry[] = [];
  const firstPathOfInode = new Map<string, string>();
  const excluded = (p: string) => options.exclude?.some((pattern) => pattern.test(p)) ?? false;

  const visit = (hostPath: string, entryPath: string, stats: Stats): void => {
    const owner = options.owner ?? { uid: stats.uid, gid: stats.gid };
    const mode = (normalised: number) => (options.owner ? normalised : stats.mode & 0o7777);
    if (stats.isDirectory()) {
      if (entryPath !== '')
        entries.push({ path: entryPath, type: 'dir', mode: mode(0o755), ...owner });
      for (const name of readdirSync(hostPath).sort(byBytes)) {
        const childPath = entryPath === '' ? name : `${entryPath}/${name}`;
        if (excluded(childPath)) continue;
        const childHostPath = path.join(hostPath, name);
        visit(childHostPath, childPath, lstatSync(childHostPath));
      }
    } else if (stats.isSymbolicLink()) {
      entries.push({
        path: entryPath,
        type: 'symlink',
        target: readlinkSync(hostPath),
        mode: 0o777,
        ...owner,
      });
    } else if (stats.isFile()) {
      const fileMode = mode(stats.mode & 0o111 ? 0o755 : 0o644);
      const inode = `${stats.dev}:${stats.ino}`;
      const first = stats.nlink > 1 ? firstPathOfInode.get(inode) : undefined;
      if (first !== undefined) {
        entries.push({
          path: entryPath,
          type: 'hardlink',
          target: first,
          mode: fileMode,
          ...owner,
        });
      } else {
        if (stats.nlink > 1) firstPathOfInode.set(inode, entryPath);
        entries.push({
          path: entryPath,
          type: 'file',
          size: stats.size,
          source: hostPath,
          mode: fileMode,
          ...owner,
        });
      }
    } else {
      throw new Error(`cannot put ${hostPath} in a layer: not a file, directory or symbolic link`);
    }
  };

  visit(hostDir, imagePath, lstatSync(hostDir));
  return entries;
}

/** Directory entries for each parent of `imagePath` ('usr', 'usr/local' for 'usr/local/bin'). */
export function parentDirs(
  imagePath: string,
  owner = { uid: 0, gid: 0 },
  mode = 0o755,
): TarEntry[] {
  const parts = imagePath.split('/').slice(0, -1);
  return parts.map((_, i) => ({
    path: parts.slice(0, i + 1).join('/'),
    type: 'dir',
    mode,
    ...owner,
  }));
}

const BLOCK = 512;
const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', dir: '5', pax: 'x' } as const;
// The largest values the ustar octal fields hold; larger ones go in a PAX header.
const MAX_SIZE = 0o77777777777;
const MAX_ID = 0o7777777;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function ustarHeader(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  typeflag: string;
  linkname: string;
}): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(fields.name, 0, 100, 'ascii');
  header.write(octal(fields.mode, 8), 100, 'ascii');
  header.write(octal(fields.uid, 8), 108, 'ascii');
  header.write(octal(fields.gid, 8), 116, 'ascii');
  header.write(octal(fields.size, 12), 124, 'ascii');
  header.write(octal(FIXED_MTIME, 12), 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write(fields.typeflag, 156, 'ascii');
  header.write(fields.linkname, 157, 100, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(octal(sum, 7) + ' ', 148, 'ascii');
  return header;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length += 1;
  return `${length}${body}`;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

const fitsUstarName = (name: string) =>
  Buffer.byteLength(name) <= 100 && /^[\x20-\x7e]*$/.test(name);

// What a reader that ignores PAX headers sees when the real value is in one.
const ustarFallback = (value: string) => value.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);

/** The header blocks of one entry: a PAX extended header first when a field does not fit. */
export function entryHeader(entry: TarEntry): Buffer[] {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const linkname = entry.type === 'symlink' || entry.type === 'hardlink' ? entry.target : '';
  const size = entry.type === 'file' ? ('content' in entry ? entry.content.length : entry.size) : 0;
  const pax: string[] = [];
  if (!fitsUstarName(name)) pax.push(paxRecord('path', name));
  if (!fitsUstarName(linkname)) pax.push(paxRecord('linkpath', linkname));
  if (size > MAX_SIZE) pax.push(paxRecord('size', String(size)));
  if (entry.uid > MAX_ID) pax.push(paxRecord('uid', String(entry.uid)));
  if (entry.gid > MAX_ID) pax.push(paxRecord('gid', String(entry.gid)));
  const blocks: Buffer[] = [];
  if (pax.length > 0) {
    const body = Buffer.from(pax.join(''));
    const paxName = ustarFallback(`PaxHeaders/${path.posix.basename(entry.path)}`);
    blocks.push(
      ustarHeader({
        name: paxName,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.length,
        typeflag: TYPEFLAG.pax,
        linkname: '',
      }),
      body,
      padding(body.length),
    );
  }
  blocks.push(
    ustarHeader({
      name: ustarFallback(name),
      mode: entry.mode,
      uid: Math.min(entry.uid, MAX_ID),
      gid: Math.min(entry.gid, MAX_ID),
      size: Math.min(size, MAX_SIZE),
      typeflag: TYPEFLAG[entry.type],
      linkname: ustarFallback(linkname),
    }),
  );
  return blocks;
}

// Small files are read whole and batched so the stream moves megabytes, not single blocks.
const WHOLE_FILE_LIMIT = 4 << 20;
const BATCH = 1 << 20;

/** The tar archive of `entries`, as a stream of buffers ending with the two zero blocks. */
export async function* tarStream(entries: Iterable<TarEntry>): AsyncGenerator<Buffer> {
  let batch: Buffer[] = [];
  let batched = 0;
  const add = (buffer: Buffer) => {
    batch.push(buffer);
    batched += buffer.length;
  };
  const flush = () => {
    const out = Buffer.concat(batch);
    batch = [];
    batched = 0;
    return out;
  };
  for (const entry of entries) {
    for (const block of entryHeader(entry)) add(block);
    if (entry.type === 'file') {
      if ('content' in entry) {
        add(entry.content);
        add(padding(entry.content.length));
      } else if (entry.size <= WHOLE_FILE_LIMIT) {
        const content = await readFile(entry.source);
        if (content.length !== entry.size) throw changedWhileWriting(entry.source);
        add(content);
        add(padding(content.length));
      } else {
        yield flush();
        let written = 0;
        for await (const chunk of createReadStream(entry.source, { highWaterMark: BATCH })) {
          written += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        if (written !== entry.size) throw changedWhileWriting(entry.source);
        add(padding(written));
      }
    }
    if (batched >= BATCH) yield flush();
  }
  add(Buffer.alloc(2 * BLOCK));
  yield flush();
}

const changedWhileWriting = (file: string) =>
  new Error(`${file} changed size while its layer was being written`);
