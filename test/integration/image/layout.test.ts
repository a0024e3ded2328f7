import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

import { buildLayer, type LayerRecipe } from '../../../tools/image/layers.js';
import { MEDIA_TYPE, OciLayout, REF_NAME, type Descriptor } from '../../../tools/image/oci.js';
import { parentDirs, treeEntries, type TarEntry } from '../../../tools/image/tar.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const LONG_DIR = `deep/${'d'.repeat(60)}/${'e'.repeat(60)}`;
const LONG_FILE = `${LONG_DIR}/a-file-whose-path-is-longer-than-the-hundred-bytes-of-a-ustar-name.txt`;

/** A tree with what a rootfs has: executables, setuid, links, long and non-ASCII names. */
function makeTree(dir: string): void {
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'empty'));
  mkdirSync(path.join(dir, LONG_DIR), { recursive: true });
  writeFileSync(path.join(dir, 'a.txt'), 'alpha\n');
  linkSync(path.join(dir, 'a.txt'), path.join(dir, 'b-hard.txt'));
  symlinkSync('a.txt', path.join(dir, 'link'));
  writeFileSync(path.join(dir, 'bin/run'), '#!/bin/sh\necho run\n');
  chmodSync(path.join(dir, 'bin/run'), 0o4755);
  writeFileSync(path.join(dir, LONG_FILE), 'long\n');
  writeFileSync(path.join(dir, 'ünïcode.txt'), 'ü\n');
  writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(5 << 20, 7));
}

function blobOf(layoutDir: string, descriptor: Descriptor): Buffer {
  return readFileSync(
    path.join(layoutDir, 'blobs/sha256', descriptor.digest.slice('sha256:'.length)),
  );
}

/** Checks every descriptor index.json reaches against its blob; returns the manifests' configs. */
function validateLayout(layoutDir: string) {
  expect(JSON.parse(readFileSync(path.join(layoutDir, 'oci-layout'), 'utf8'))).to.deep.equal({
    imageLayoutVersion: '1.0.0',
  });
  const index = JSON.parse(readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as {
    mediaType: string;
    manifests: Descriptor[];
  };
  expect(index.mediaType).to.equal(MEDIA_TYPE.index);
  const matches = (descriptor: Descriptor, what: string) => {
    const blob = blobOf(layoutDir, descriptor);
    expect(sha256(blob), `${what} digest`).to.equal(descriptor.digest);
    expect(blob.length, `${what} size`).to.equal(descriptor.size);
    return blob;
  };
  return index.manifests.map((descriptor) => {
    const ref = descriptor.annotations?.[REF_NAME] ?? '?';
    expect(descriptor.mediaType).to.equal(MEDIA_TYPE.manifest);
    const manifest = JSON.parse(matches(descriptor, `${ref} manifest`).toString()) as {
      config: Descriptor;
      layers: Descriptor[];
    };
    expect(manifest.config.mediaType).to.equal(MEDIA_TYPE.config);
    const config = JSON.parse(matches(manifest.config, `${ref} config`).toString()) as {
      rootfs: { diff_ids: string[] };
      config: Record<string, unknown>;
    };
    const diffIds = manifest.layers.map((layer, i) => {
      const blob = matches(layer, `${ref} layer ${i}`);
      return sha256(layer.mediaType === MEDIA_TYPE.layerGzip ? gunzipSync(blob) : blob);
    });
    expect(config.rootfs.diff_ids, `${ref} diff_ids`).to.deep.equal(diffIds);
    return { ref, manifest, config };
  });
}

interface Listed {
  mode: string;
  owner: string;
  size: string;
  time: string;
  name: string;
}

/** GNU tar's own reading of a layer: an independent check of the format. */
function listTar(file: string): Listed[] {
  const output = execFileSync(
    'tar',
    [
      '--list',
      '--verbose',
      '--numeric-owner',
      '--full-time',
      '--quoting-style=literal',
      '-f',
      file,
    ],
    { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } },
  );
  return output
    .trimEnd()
    .split('\n')
    .map((line) => {
      const [mode, owner, size, date, time, ...name] = line.split(/\s+/);
      return {
        mode: mode!,
        owner: owner!,
        size: size!,
        time: `${date} ${time}`,
        name: name.join(' '),
      };
    });
}

describe('image build: deterministic layers in an OCI image layout', function () {
  this.timeout(60_000);
  let dir: string;
  let tree: string;

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-layout-'));
    tree = path.join(dir, 'tree');
    mkdirSync(tree);
    makeTree(tree);
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a layout whose descriptors, sizes and diff_ids all match their blobs', async function () {
    const layout = new OciLayout(path.join(dir, 'oci'));
    await layout.init();
    const plain = await layout.writeLayer(treeEntries(tree, ''), 'none');
    const gzip = await layout.writeLayer(
      treeEntries(tree, 'opt/tree', { owner: { uid: 0, gid: 0 } }),
      'gzip',
    );
    expect(plain.mediaType).to.equal(MEDIA_TYPE.layer);
    expect(plain.digest, 'an uncompressed layer is its own diff_id').to.equal(plain.diffId);
    expect(gzip.mediaType).to.equal(MEDIA_TYPE.layerGzip);
    expect(gzip.digest).to.not.equal(gzip.diffId);
    const manifests = [
      await layout.writeImage({
        ref: 'test/plain:1',
        config: { Entrypoint: ['/bin/run'], User: '1000:1000' },
        layers: [{ layer: plain, createdBy: 'tree' }],
      }),
      await layout.writeImage({
        ref: 'test/both:2',
        config: { Cmd: ['run'] },
        layers: [
          { layer: plain, createdBy: 'tree' },
          { layer: gzip, createdBy: 'tree at /opt/tree' },
        ],
      }),
    ];
    await layout.writeIndex(manifests);

    const images = validateLayout(layout.dir);
    expect(images.map(({ ref }) => ref)).to.deep.equal(['test/plain:1', 'test/both:2']);
    expect(images[0]!.config.config).to.deep.equal({ Entrypoint: ['/bin/run'], User: '1000:1000' });
    expect(images[1]!.manifest.layers.map((layer) => layer.mediaType)).to.deep.equal([
      MEDIA_TYPE.layer,
      MEDIA_TYPE.layerGzip,
    ]);
  });

  it('gives the same bytes for the same tree, whatever the files’ times, and other bytes for other content', async function () {
    const write = async (name: string) => {
      const layout = new OciLayout(path.join(dir, name));
      await layout.init();
      return layout.writeLayer(treeEntries(tree, ''), 'gzip');
    };
    const first = await write('first');
    for (const file of ['a.txt', 'bin/run', LONG_FILE, 'empty']) {
      utimesSync(
        path.join(tree, file),
        new Date('2001-02-03T04:05:06Z'),
        new Date('2001-02-03T04:05:06Z'),
      );
    }
    const second = await write('second');
    expect(second.digest).to.equal(first.digest);
    expect(second.diffId).to.equal(first.diffId);

    writeFileSync(path.join(tree, 'bin/run'), '#!/bin/sh\necho changed\n');
    const third = await write('third');
    expect(third.diffId).to.not.equal(first.diffId);
  });

  it('is read back by GNU tar: sorted names, fixed mtime, numeric owners, links and long names intact', async function () {
    const layout = new OciLayout(path.join(dir, 'oci'));
    await layout.init();
    const { uid, gid } = lstatSync(path.join(tree, 'a.txt'));
    const synthetic: TarEntry[] = [
      ...parentDirs('etc/conf/x'),
      {
        path: 'etc/conf/owned',
        type: 'file',
        content: Buffer.from('x'),
        mode: 0o640,
        uid: 1234,
        gid: 5678,
      },
      {
        path: 'etc/conf/big-ids',
        type: 'file',
        content: Buffer.from('y'),
        mode: 0o600,
        uid: 3_000_000,
        gid: 3_000_001,
      },
    ];
    const layer = await layout.writeLayer([...treeEntries(tree, ''), ...synthetic], 'none');
    const file = path.join(layout.dir, 'blobs/sha256', layer.digest.slice(7));
    const listed = listTar(file);
    const byName = new Map(
      listed.map((entry) => [entry.name.replace(/ (->|link to) .*$/, ''), entry]),
    );

    expect(
      listed.every(({ time }) => time === '1970-01-01 00:00:00'),
      'every mtime is the epoch',
    ).to.equal(true);
    expect(byName.get('a.txt')).to.include({
      mode: '-rw-r--r--',
      owner: `${uid}/${gid}`,
      size: '6',
    });
    expect(byName.get('b-hard.txt')!.mode.startsWith('h')).to.equal(true);
    expect(byName.get('b-hard.txt')!.name).to.equal('b-hard.txt link to a.txt');
    expect(byName.get('link')!.name).to.equal('link -> a.txt');
    expect(byName.get('bin/run')!.mode).to.equal('-rwsr-xr-x');
    expect(byName.get('empty/')!.mode).to.equal('drwxr-xr-x');
    expect(byName.get(LONG_FILE)!.size).to.equal('5');
    expect(byName.has('ünïcode.txt')).to.equal(true);
    expect(byName.get('etc/conf/owned')).to.include({ mode: '-rw-r-----', owner: '1234/5678' });
    expect(byName.get('etc/conf/big-ids')!.owner).to.equal('3000000/3000001');
    // depth first, names sorted bytewise, each directory before what it holds
    const deep = LONG_DIR.split('/');
    expect(listed.map(({ name }) => name.replace(/ (->|link to) .*$/, ''))).to.deep.equal([
      'a.txt',
      'b-hard.txt',
      'big.bin',
      'bin/',
      'bin/run',
      'deep/',
      `${deep.slice(0, 2).join('/')}/`,
      `${LONG_DIR}/`,
      LONG_FILE,
      'empty/',
      'link',
      'ünïcode.txt',
      'etc/',
      'etc/conf/',
      'etc/conf/owned',
      'etc/conf/big-ids',
    ]);

    const out = path.join(dir, 'out');
    mkdirSync(out);
    execFileSync('tar', ['-x', '--numeric-owner', '-p', '-f', file, '-C', out]);
    expect(readFileSync(path.join(out, LONG_FILE), 'utf8')).to.equal('long\n');
    expect(
      readFileSync(path.join(out, 'big.bin')).equals(readFileSync(path.join(tree, 'big.bin'))),
    ).to.equal(true);
    expect(readlinkSync(path.join(out, 'link'))).to.equal('a.txt');
    expect(lstatSync(path.join(out, 'b-hard.txt')).ino).to.equal(
      lstatSync(path.join(out, 'a.txt')).ino,
    );
  });

  it('normalises owners and modes when copying files into an image, as COPY does', function () {
    const entries = treeEntries(tree, 'app', { owner: { uid: 0, gid: 0 } });
    const get = (p: string) => entries.find((entry) => entry.path === p)!;
    expect(get('app')).to.include({ type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    expect(get('app/bin/run')).to.include({ mode: 0o755, uid: 0 });
    expect(get('app/a.txt')).to.include({ mode: 0o644, uid: 0 });
    const kept = treeEntries(tree, '', { exclude: [/^bin\/./, /^deep$/] }).map(
      (entry) => entry.path,
    );
    expect(kept).to.include('bin');
    expect(kept).to.not.include('bin/run');
    expect(kept.some((p) => p.startsWith('deep'))).to.equal(false);
  });

  it('reuses a layer while its inputs are unchanged and rewrites it when a file changes', async function () {
    const layout = new OciLayout(path.join(dir, 'oci'));
    await layout.init();
    const cache = path.join(dir, 'layer-cache');
    const recipe: LayerRecipe = { createdBy: 'tree', entries: () => treeEntries(tree, '') };
    const first = await buildLayer(layout, cache, recipe, 'none');
    expect(first.reused).to.equal(false);
    const again = await buildLayer(layout, cache, recipe, 'none');
    expect(again.reused).to.equal(true);
    expect(again.layer).to.deep.equal(first.layer);

    writeFileSync(path.join(tree, 'a.txt'), 'ALPHA\n');
    const changed = await buildLayer(layout, cache, recipe, 'none');
    expect(changed.reused).to.equal(false);
    expect(changed.layer.digest).to.not.equal(first.layer.digest);

    // a layer whose blob has gone from the layout is written again
    rmSync(path.join(layout.dir, 'blobs/sha256', changed.layer.digest.slice(7)));
    expect((await buildLayer(layout, cache, recipe, 'none')).reused).to.equal(false);

    // an immutable key stands for the content: same key, no re-read
    const keyed: LayerRecipe = { ...recipe, immutableKey: 'rootfs-1' };
    await buildLayer(layout, cache, keyed, 'none');
    writeFileSync(path.join(tree, 'a.txt'), 'changed, but the key says not\n');
    expect((await buildLayer(layout, cache, keyed, 'none')).reused).to.equal(true);
    expect(
      (await buildLayer(layout, cache, { ...keyed, immutableKey: 'rootfs-2' }, 'none')).reused,
    ).to.equal(false);
  });

  it('removes the blobs index.json no longer reaches and keeps the rest', async function () {
    const layout = new OciLayout(path.join(dir, 'oci'));
    await layout.init();
    const layer = await layout.writeLayer(treeEntries(tree, ''), 'none');
    const stray = await layout.writeBlob('application/octet-stream', Buffer.from('stray'));
    await layout.writeIndex([
      await layout.writeImage({
        ref: 'test/gc:1',
        config: {},
        layers: [{ layer, createdBy: 'tree' }],
      }),
    ]);
    expect(await layout.removeUnreferenced()).to.equal(stray.size);
    expect(layout.hasBlob(stray)).to.equal(false);
    expect(layout.hasBlob(layer)).to.equal(true);
    validateLayout(layout.dir);
  });
});
