/**
 * A read-only OCI distribution registry (the pull half of the distribution spec) over an OCI
 * image layout such as `make image` writes: what containerd pulls the test node's images
 * from. Tags resolve through index.json's `org.opencontainers.image.ref.name` annotations
 * (`<repository>:<tag>`); it listens on 127.0.0.1 only.
 *
 *   node --import tsx/esm test/support/registry.ts --layout DIR --port N
 */
import { createReadStream, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, sleep, startProcess, stopProcess, waitFor } from './processes.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST_TYPES = new Set([
  INDEX,
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const REF_NAME = 'org.opencontainers.image.ref.name';
const DIGEST = /^sha256:[a-f0-9]{64}$/;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

interface ImageDocument {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

type ErrorCode = 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_UNKNOWN' | 'UNSUPPORTED';

class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** `library/nginx:latest` → repository and tag; a bare tag or a digest reference names no repository. */
function splitRefName(refName: string): { repository: string; tag: string } | undefined {
  const colon = refName.lastIndexOf(':');
  if (colon <= 0 || refName.indexOf('/', colon) >= 0 || refName.includes('@')) return undefined;
  return { repository: refName.slice(0, colon), tag: refName.slice(colon + 1) };
}

/** One request's view of the layout: read afresh, so a rebuilt layout is served at once. */
class LayoutView {
  constructor(private readonly dir: string) {}

  blobPath(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  private async document(descriptor: Descriptor): Promise<ImageDocument> {
    return JSON.parse(await readFile(this.blobPath(descriptor.digest), 'utf8')) as ImageDocument;
  }

  /** The index.json entries tagged into `repository`, or NAME_UNKNOWN. */
  async tagged(repository: string): Promise<{ tag: string; descriptor: Descriptor }[]> {
    const index = JSON.parse(
      await readFile(path.join(this.dir, 'index.json'), 'utf8'),
    ) as ImageDocument;
    const tagged = (index.manifests ?? []).flatMap((descriptor) => {
      const ref = splitRefName(descriptor.annotations?.[REF_NAME] ?? '');
      return ref?.repository === repository ? [{ tag: ref.tag, descriptor }] : [];
    });
    if (tagged.length === 0) {
      throw new RegistryError(404, 'NAME_UNKNOWN', `repository ${repository} is not in the layout`);
    }
    return tagged;
  }

  /** The manifests (and indexes) reachable from the repository's tags. */
  private async manifests(repository: string): Promise<Descriptor[]> {
    const found: Descriptor[] = [];
    const visit = async (descriptor: Descriptor): Promise<void> => {
      found.push(descriptor);
      if (descriptor.mediaType === INDEX) {
        for (const child of (await this.document(descriptor)).manifests ?? []) await visit(child);
      }
    };
    for (const { descriptor } of await this.tagged(repository)) await visit(descriptor);
    return found;
  }

  async manifest(repository: string, reference: string): Promise<Descriptor> {
    if (DIGEST.test(reference)) {
      const match = (await this.manifests(repository)).find(
        (descriptor) => descriptor.digest === reference,
      );
      if (match) return match;
    } else {
      const match = (await this.tagged(repository)).find(({ tag }) => tag === reference);
      if (match) return match.descriptor;
    }
    throw new RegistryError(
      404,
      'MANIFEST_UNKNOWN',
      `manifest ${reference} is not in ${repository}`,
    );
  }

  /** A blob of the repository: a manifest, or a config or layer one of them names. */
  async blob(repository: string, digest: string): Promise<string> {
    const unknown = new RegistryError(
      404,
      'BLOB_UNKNOWN',
      `blob ${digest} is not in ${repository}`,
    );
    if (!DIGEST.test(digest)) throw unknown;
    const reachable = new Set<string>();
    for (const manifest of await this.manifests(repository)) {
      reachable.add(manifest.digest);
      const document = await this.document(manifest);
      for (const child of [document.config, ...(document.layers ?? [])]) {
        if (child) reachable.add(child.digest);
      }
    }
    const file = this.blobPath(digest);
    if (!reachable.has(digest) || !existsSync(file)) throw unknown;
    return file;
  }

  async tags(repository: string): Promise<string[]> {
    return (await this.tagged(repository)).map(({ tag }) => tag).sort();
  }
}

const COMMON_HEADERS = { 'Docker-Distribution-API-Version': 'registry/2.0' };

function sendJson(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const bytes = Buffer.from(JSON.stringify(body));
  response.writeHead(status, {
    ...COMMON_HEADERS,
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(bytes.length),
  });
  response.end(request.method === 'HEAD' ? undefined : bytes);
}

function sendError(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  error: RegistryError,
): void {
  const headers: Record<string, string> = error.status === 405 ? { Allow: 'GET, HEAD' } : {};
  sendJson(
    request,
    response,
    error.status,
    { errors: [{ code: error.code, message: error.message }] },
    headers,
  );
}

/** A single `bytes=start-end` range over a blob of `size` bytes; undefined for the whole blob. */
function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'invalid' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  const [start, end] =
    match[1] === ''
      ? [Math.max(0, size - Number(match[2])), size - 1]
      : [Number(match[1]), match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)];
  return start > end || start >= size ? 'invalid' : { start, end };
}

async function handle(
  view: LayoutView,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  // containerd, pulling through a mirror, adds ?ns=<registry>: resolution ignores the query.
  const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://registry').pathname);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    throw new RegistryError(
      405,
      'UNSUPPORTED',
      `${request.method} is not supported: this registry is read-only`,
    );
  }
  if (pathname === '/v2/' || pathname === '/v2') {
    sendJson(request, response, 200, {});
    return;
  }
  const tagList = /^\/v2\/(.+)\/tags\/list$/.exec(pathname);
  if (tagList) {
    sendJson(request, response, 200, { name: tagList[1], tags: await view.tags(tagList[1]!) });
    return;
  }
  const route = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(pathname);
  if (!route) throw new RegistryError(404, 'NAME_UNKNOWN', `no such endpoint: ${pathname}`);
  const [, repository, kind, reference] = route as unknown as [string, string, string, string];

  if (kind === 'manifests') {
    const descriptor = await view.manifest(repository, reference);
    const body = await readFile(view.blobPath(descriptor.digest));
    const declared = (JSON.parse(body.toString('utf8')) as ImageDocument).mediaType;
    const mediaType = MANIFEST_TYPES.has(descriptor.mediaType)
      ? descriptor.mediaType
      : (declared ?? descriptor.mediaType);
    response.writeHead(200, {
      ...COMMON_HEADERS,
      'Content-Type': mediaType,
      'Content-Length': String(body.length),
      'Docker-Content-Digest': descriptor.digest,
      ETag: `"${descriptor.digest}"`,
    });
    response.end(request.method === 'HEAD' ? undefined : body);
    return;
  }

  const file = await view.blob(repository, reference);
  const size = statSync(file).size;
  const range = byteRange(request.headers.range, size);
  if (range === 'invalid') {
    response.writeHead(416, { ...COMMON_HEADERS, 'Content-Range': `bytes */${size}` });
    response.end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  response.writeHead(range ? 206 : 200, {
    ...COMMON_HEADERS,
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(size === 0 ? 0 : end - start + 1),
    'Docker-Content-Digest': reference,
    'Accept-Ranges': 'bytes',
    ...(range && { 'Content-Range': `bytes ${start}-${end}/${size}` }),
  });
  if (request.method === 'HEAD' || size === 0) {
    response.end();
    return;
  }
  const stream = createReadStream(file, { start, end });
  stream.once('error', (error) => response.destroy(error));
  stream.pipe(response);
}

export interface RegistryServer {
  port: number;
  close(): Promise<void>;
}

/** Serves `layoutDir` on 127.0.0.1:`port` (0: any free port) in this process. */
export async function serveRegistry(
  layoutDir: string,
  port = 0,
  onRequest?: (line: string) => void,
): Promise<RegistryServer> {
  const view = new LayoutView(layoutDir);
  const server = http.createServer((request, response) => {
    response.once('finish', () =>
      onRequest?.(`${request.method} ${request.url} ${response.statusCode}`),
    );
    handle(view, request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof RegistryError) sendError(request, response, error);
      else if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        sendError(
          request,
          response,
          new RegistryError(404, 'NAME_UNKNOWN', `${layoutDir} has no index.json`),
        );
      } else
        sendJson(request, response, 500, { errors: [{ code: 'UNKNOWN', message: String(error) }] });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

const registryScript = fileURLToPath(import.meta.url);

function logTail(logFile: string, from: number, lines = 15): string {
  try {
    const text = readFileSync(logFile).subarray(from).toString('utf8').trimEnd();
    return text === '' ? '(log empty)' : text.split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${logFile})`;
  }
}

/**
 * Starts the registry CLI as a process of its own (`owned: false`: it outlives its starter,
 * as `make up` needs) and resolves once GET /v2/ answers 200 from that very process.
 */
export async function startRegistryProcess(options: {
  layoutDir: string;
  port: number;
  logFile: string;
  owned: boolean;
  timeoutMs?: number;
}): Promise<{ pid: number; port: number }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const logStart = existsSync(options.logFile) ? statSync(options.logFile).size : 0;
  // tsx resolved here, so the child finds it whatever its working directory.
  const tsx = import.meta.resolve('tsx/esm');
  const args = [
    '--import',
    tsx,
    registryScript,
    '--layout',
    options.layoutDir,
    '--port',
    String(options.port),
  ];
  const child = startProcess(process.execPath, args, {
    logFile: options.logFile,
    owned: options.owned,
  });
  const pid = child.pid!;
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      resolve();
    }),
  );
  const listening = new RegExp(`^registry pid=${pid} listening on 127\\.0\\.0\\.1:(\\d+)`, 'm');
  const where = `127.0.0.1:${options.port === 0 ? '<any port>' : options.port}`;

  let outcome: { port: number } | { exited: true };
  try {
    outcome = await waitFor(
      async () => {
        if (exit !== undefined || !isAlive(pid)) return { exited: true as const };
        const port = listening.exec(logTail(options.logFile, logStart, Infinity))?.[1];
        if (!port) return undefined;
        const response = await fetch(`http://127.0.0.1:${port}/v2/`, {
          signal: AbortSignal.timeout(2_000),
        });
        await response.arrayBuffer();
        return response.status === 200 ? { port: Number(port) } : undefined;
      },
      timeoutMs,
      `the registry (pid ${pid}) on ${where} to answer GET /v2/`,
    );
  } catch (error) {
    await stopProcess(pid, 2_000);
    throw new Error(`${(error as Error).message}\n${logTail(options.logFile, logStart)}`, {
      cause: error,
    });
  }
  if ('exited' in outcome) {
    // /proc can show the process gone a moment before its exit status reaches us
    await Promise.race([exited, sleep(2_000)]);
    throw new Error(
      `the registry (pid ${pid}) ${exit ?? 'exited'} before answering on ${where}\n${logTail(options.logFile, logStart)}`,
    );
  }
  return { pid, port: outcome.port };
}

function parseArgs(argv: string[]): { layout: string; port: number } {
  const value = (flag: string) => {
    const index = argv.indexOf(flag);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  const layout = value('--layout');
  const port = Number(value('--port') ?? '0');
  if (!layout || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error('usage: registry.ts --layout DIR [--port N]');
  }
  return { layout: path.resolve(layout), port };
}

async function main(): Promise<void> {
  const { layout, port } = parseArgs(process.argv.slice(2));
  if (!existsSync(path.join(layout, 'oci-layout'))) {
    throw new Error(`${layout} is not an OCI image layout (no oci-layout file): run make image`);
  }
  const server = await serveRegistry(layout, port, (line) =>
    process.stdout.write(`${line}\n`),
  ).catch((error: NodeJS.ErrnoException) => {
    const reason = error.code === 'EADDRINUSE' ? 'the port is in use' : error.message;
    throw new Error(`cannot listen on 127.0.0.1:${port}: ${reason}`);
  });
  process.stdout.write(
    `registry pid=${process.pid} listening on 127.0.0.1:${server.port} serving ${layout}\n`,
  );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void server.close().finally(() => process.exit(0));
    });
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(registryScript)) {
  main().catch((error: unknown) => {
    process.stderr.write(`registry: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
