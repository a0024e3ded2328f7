import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import { isAlive, stopProcess } from '../../support/processes.js';
import {
  serveRegistry,
  startRegistryProcess,
  type RegistryServer,
} from '../../support/registry.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
}

/**
 * A layout written by hand (not by tools/image, which has its own test): `test/app:1.0`, an
 * image with one gzip layer, and `test/multi:v1`, an image index over a second image.
 */
function writeLayout(dir: string) {
  mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const blob = (mediaType: string, bytes: Buffer): Blob => {
    const digest = sha256(bytes);
    writeFileSync(path.join(dir, 'blobs/sha256', digest.slice(7)), bytes);
    return { mediaType, digest, size: bytes.length, bytes };
  };
  const json = (mediaType: string, value: unknown) =>
    blob(mediaType, Buffer.from(JSON.stringify(value)));
  const descriptor = ({ mediaType, digest, size }: Blob) => ({ mediaType, digest, size });
  const image = (content: string) => {
    const layerTar = Buffer.alloc(1024 + 512, 0);
    layerTar.write(content, 0);
    const layer = blob('application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(layerTar));
    const config = json('application/vnd.oci.image.config.v1+json', {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    });
    const manifest = json(MANIFEST, {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: descriptor(config),
      layers: [descriptor(layer)],
    });
    return { layer, config, manifest };
  };
  const app = image('app layer');
  const multi = image('multi layer');
  const multiIndex = json(INDEX, {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [
      { ...descriptor(multi.manifest), platform: { architecture: 'amd64', os: 'linux' } },
    ],
  });
  const stray = blob('application/octet-stream', Buffer.from('in blobs/ but named by no manifest'));
  const ref = (name: string) => ({ annotations: { 'org.opencontainers.image.ref.name': name } });
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: INDEX,
      manifests: [
        { ...descriptor(app.manifest), ...ref('test/app:1.0') },
        { ...descriptor(multiIndex), ...ref('test/multi:v1') },
      ],
    }),
  );
  return { app, multi, multiIndex, stray };
}

describe('test registry: OCI distribution pull API over an image layout', function () {
  let dir: string;
  let layout: ReturnType<typeof writeLayout>;
  let server: RegistryServer;
  let requests: string[];
  const url = (p: string) => `http://127.0.0.1:${server.port}${p}`;

  async function expectError(response: Response, status: number, code: string): Promise<void> {
    expect(response.status, `${response.url} status`).to.equal(status);
    expect(response.headers.get('content-type')).to.equal('application/json');
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors).to.have.length(1);
    expect(body.errors[0]!.code).to.equal(code);
    expect(body.errors[0]!.message).to.be.a('string').with.length.above(0);
  }

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-registry-'));
    layout = writeLayout(dir);
    requests = [];
    server = await serveRegistry(dir, 0, (line) => requests.push(line));
  });

  after(async function () {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the API version check on /v2/, GET and HEAD', async function () {
    for (const method of ['GET', 'HEAD']) {
      const response = await fetch(url('/v2/'), { method });
      expect(response.status, method).to.equal(200);
      expect(response.headers.get('docker-distribution-api-version')).to.equal('registry/2.0');
    }
    expect(requests).to.include('GET /v2/ 200');
  });

  it('serves a manifest by tag and by digest with its media type, digest and length', async function () {
    const { manifest } = layout.app;
    for (const reference of ['1.0', manifest.digest]) {
      const response = await fetch(url(`/v2/test/app/manifests/${reference}`));
      expect(response.status, reference).to.equal(200);
      const body = Buffer.from(await response.arrayBuffer());
      expect(body.equals(manifest.bytes), 'the manifest bytes as stored').to.equal(true);
      expect(response.headers.get('content-type')).to.equal(MANIFEST);
      expect(response.headers.get('docker-content-digest')).to.equal(sha256(body));
      expect(response.headers.get('content-length')).to.equal(String(manifest.size));
    }
  });

  it('answers HEAD for a manifest with the headers of GET and no body', async function () {
    const response = await fetch(url('/v2/test/app/manifests/1.0'), { method: 'HEAD' });
    expect(response.status).to.equal(200);
    expect(response.headers.get('docker-content-digest')).to.equal(layout.app.manifest.digest);
    expect(response.headers.get('content-length')).to.equal(String(layout.app.manifest.size));
    expect((await response.arrayBuffer()).byteLength).to.equal(0);
  });

  it('ignores the ns query containerd adds when it pulls through a mirror', async function () {
    const manifest = await fetch(url('/v2/test/app/manifests/1.0?ns=docker.io'));
    expect(manifest.status).to.equal(200);
    expect(manifest.headers.get('docker-content-digest')).to.equal(layout.app.manifest.digest);
    const blob = await fetch(url(`/v2/test/app/blobs/${layout.app.layer.digest}?ns=docker.io`));
    expect(blob.status).to.equal(200);
    expect(requests).to.include('GET /v2/test/app/manifests/1.0?ns=docker.io 200');
  });

  it('streams blobs whose bytes match their digest, with length and digest headers', async function () {
    for (const blob of [layout.app.layer, layout.app.config]) {
      const response = await fetch(url(`/v2/test/app/blobs/${blob.digest}`));
      expect(response.status).to.equal(200);
      const body = Buffer.from(await response.arrayBuffer());
      expect(sha256(body)).to.equal(blob.digest);
      expect(response.headers.get('docker-content-digest')).to.equal(blob.digest);
      expect(response.headers.get('content-length')).to.equal(String(blob.size));
      const head = await fetch(url(`/v2/test/app/blobs/${blob.digest}`), { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.headers.get('content-length')).to.equal(String(blob.size));
    }
  });

  it('serves a byte range of a blob', async function () {
    const { layer } = layout.app;
    const response = await fetch(url(`/v2/test/app/blobs/${layer.digest}`), {
      headers: { Range: 'bytes=3-9' },
    });
    expect(response.status).to.equal(206);
    expect(response.headers.get('content-range')).to.equal(`bytes 3-9/${layer.size}`);
    expect(Buffer.from(await response.arrayBuffer()).equals(layer.bytes.subarray(3, 10))).to.equal(
      true,
    );
    const beyond = await fetch(url(`/v2/test/app/blobs/${layer.digest}`), {
      headers: { Range: `bytes=${layer.size}-` },
    });
    expect(beyond.status).to.equal(416);
  });

  it('serves an image index by tag, and the manifests and blobs under it', async function () {
    const index = await fetch(url('/v2/test/multi/manifests/v1'));
    expect(index.status).to.equal(200);
    expect(index.headers.get('content-type')).to.equal(INDEX);
    expect(index.headers.get('docker-content-digest')).to.equal(layout.multiIndex.digest);
    const child = await fetch(url(`/v2/test/multi/manifests/${layout.multi.manifest.digest}`));
    expect(child.status).to.equal(200);
    expect(child.headers.get('content-type')).to.equal(MANIFEST);
    const layer = await fetch(url(`/v2/test/multi/blobs/${layout.multi.layer.digest}`));
    expect(sha256(Buffer.from(await layer.arrayBuffer()))).to.equal(layout.multi.layer.digest);
  });

  it('lists the tags of a repository', async function () {
    const response = await fetch(url('/v2/test/app/tags/list'));
    expect(await response.json()).to.deep.equal({ name: 'test/app', tags: ['1.0'] });
  });

  it('answers 404 with an OCI error body for unknown names, manifests and blobs', async function () {
    await expectError(await fetch(url('/v2/test/app/manifests/2.0')), 404, 'MANIFEST_UNKNOWN');
    await expectError(
      await fetch(url(`/v2/test/app/manifests/${layout.multi.manifest.digest}`)),
      404,
      'MANIFEST_UNKNOWN',
    );
    await expectError(await fetch(url('/v2/library/nginx/manifests/latest')), 404, 'NAME_UNKNOWN');
    await expectError(
      await fetch(url(`/v2/test/app/blobs/${layout.stray.digest}`)),
      404,
      'BLOB_UNKNOWN',
    );
    // a blob of another repository is not served through this one
    await expectError(
      await fetch(url(`/v2/test/app/blobs/${layout.multi.layer.digest}`)),
      404,
      'BLOB_UNKNOWN',
    );
    await expectError(
      await fetch(url('/v2/test/app/blobs/sha256:not-a-digest')),
      404,
      'BLOB_UNKNOWN',
    );
    const head = await fetch(url('/v2/test/app/manifests/2.0'), { method: 'HEAD' });
    expect(head.status).to.equal(404);
  });

  it('refuses writes with 405 UNSUPPORTED', async function () {
    const put = await fetch(url('/v2/test/app/manifests/2.0'), {
      method: 'PUT',
      headers: { 'Content-Type': MANIFEST },
      body: layout.app.manifest.bytes,
    });
    await expectError(put, 405, 'UNSUPPORTED');
    expect(put.headers.get('allow')).to.equal('GET, HEAD');
    await expectError(
      await fetch(url('/v2/test/app/blobs/uploads/'), { method: 'POST' }),
      405,
      'UNSUPPORTED',
    );
    await expectError(
      await fetch(url(`/v2/test/app/manifests/${layout.app.manifest.digest}`), {
        method: 'DELETE',
      }),
      405,
      'UNSUPPORTED',
    );
    expect((await fetch(url('/v2/test/app/manifests/1.0'))).status, 'still served').to.equal(200);
  });

  describe('as a process of its own', function () {
    this.timeout(60_000);

    it('starts, logs each request, and stops by PID', async function () {
      const logFile = path.join(dir, 'registry.log');
      const started = await startRegistryProcess({ layoutDir: dir, port: 0, logFile, owned: true });
      try {
        expect(started.port).to.be.above(0);
        const response = await fetch(
          `http://127.0.0.1:${started.port}/v2/test/app/manifests/1.0?ns=docker.io`,
        );
        expect(response.status).to.equal(200);
        expect(response.headers.get('docker-content-digest')).to.equal(layout.app.manifest.digest);
      } finally {
        await stopProcess(started.pid);
      }
      expect(isAlive(started.pid)).to.equal(false);
      const log = readFileSync(logFile, 'utf8');
      expect(log).to.match(
        new RegExp(`registry pid=${started.pid} listening on 127\\.0\\.0\\.1:${started.port}`),
      );
      expect(log).to.include('GET /v2/ 200');
      expect(log).to.include('GET /v2/test/app/manifests/1.0?ns=docker.io 200');
    });

    it('fails with the reason and the log tail when its port is taken', async function () {
      const logFile = path.join(dir, 'registry-busy.log');
      let failure: Error | undefined;
      try {
        const started = await startRegistryProcess({
          layoutDir: dir,
          port: server.port,
          logFile,
          owned: true,
        });
        await stopProcess(started.pid);
      } catch (error) {
        failure = error as Error;
      }
      expect(failure, 'startRegistryProcess rejects').to.be.instanceOf(Error);
      const [reason, ...tail] = failure!.message.split('\n');
      expect(reason).to.match(/exited with code 1 before answering on 127\.0\.0\.1:\d+/);
      expect(tail.join('\n')).to.include(
        `cannot listen on 127.0.0.1:${server.port}: the port is in use`,
      );
    });

    it('fails when the directory is not an image layout', async function () {
      const empty = mkdtempSync(path.join(os.tmpdir(), 'snapback-registry-empty-'));
      try {
        const start = startRegistryProcess({
          layoutDir: empty,
          port: 0,
          logFile: path.join(empty, 'log'),
          owned: true,
        });
        let failure: Error | undefined;
        await start.catch((error: Error) => (failure = error));
        expect(failure?.message).to.include('is not an OCI image layout');
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    });
  });
});
