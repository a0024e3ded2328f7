import type {
  DeleteOptions,
  KubeClient,
  ListOptions,
  ObjectList,
  PatchOptions,
  PatchType,
  WatchEvent,
  WatchHandle,
  WatchOptions,
  WriteOptions,
} from './client.js';
import { ApiError } from './errors.js';
import {
  clusterAccessFromKubeConfig,
  type ClusterAccess,
  type KubeConfigLike,
} from './kubeconfig.js';
import { TokenBucket } from './rate-limit.js';
import { apiVersionOf, type KubeObject, type ResourceType } from './resource.js';
import { Transport, type TransportResponse } from './transport.js';

type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpKubeClientOptions {
  /** Client-side request rate limit (client-go's QPS/Burst); watches are not limited. */
  qps?: number;
  burst?: number;
  /** A watch that delivers nothing (not even a bookmark) for this long is ended with an error. */
  watchIdleTimeoutMs?: number;
  /** Page size of list requests. */
  listPageSize?: number;
  /** Requests other than watches fail after this long (a hung connection must not stall a caller). */
  requestTimeoutMs?: number;
  userAgent?: string;
}

const contentTypes: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

/**
 * A watch that delivered nothing, not even a bookmark, for the idle timeout: the connection
 * may be dead. Watchers resume from their last resourceVersion; it is not a failure.
 */
export class WatchIdleError extends Error {
  override readonly name = 'WatchIdleError';

  constructor(resource: string, idleMs: number) {
    super(`watch of ${resource} idle for ${idleMs} ms`);
  }
}

/** What a request sends besides its method and path. */
interface Body {
  body?: string;
  contentType?: string;
  query?: Record<string, string | undefined>;
}

/**
 * `KubeClient` over HTTP, with the credentials and TLS settings of a kubeconfig: our own
 * ClusterAccess (see kubeconfig.ts), or the current context of a client-node KubeConfig.
 */
export class HttpKubeClient implements KubeClient {
  private readonly transport: Transport;
  private readonly bucket: TokenBucket;
  private readonly options: Required<HttpKubeClientOptions>;
  private requestCount = 0;

  constructor(config: ClusterAccess | KubeConfigLike, options: HttpKubeClientOptions = {}) {
    this.transport = new Transport(
      'getCurrentCluster' in config ? clusterAccessFromKubeConfig(config) : config,
    );
    this.options = {
      qps: options.qps ?? 50,
      burst: options.burst ?? 100,
      watchIdleTimeoutMs: options.watchIdleTimeoutMs ?? 120_000,
      listPageSize: options.listPageSize ?? 500,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      userAgent: options.userAgent ?? 'snapback',
    };
    this.bucket = new TokenBucket(this.options.qps, this.options.burst);
  }

  /** Requests sent so far (watches included), for request-count benchmarks. */
  get requests(): number {
    return this.requestCount;
  }

  async get<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', this.path(type, namespace, name));
    } catch (error) {
      if (error instanceof ApiError && error.code === 404) return undefined;
      throw error;
    }
  }

  async list<T extends KubeObject>(
    type: ResourceType,
    options: ListOptions = {},
  ): Promise<ObjectList<T>> {
    const query: Record<string, string | undefined> = {
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      resourceVersion: options.resourceVersion,
    };
    const singlePage = options.limit !== undefined || options.continue !== undefined;
    const limit = options.limit ?? this.options.listPageSize;
    const items: T[] = [];
    let token = options.continue;
    for (;;) {
      const page = await this.request<{
        items?: T[];
        metadata?: { resourceVersion?: string; continue?: string };
      }>('GET', this.path(type, options.namespace), {
        query: { ...query, limit: String(limit), continue: token },
      });
      // list items carry neither apiVersion nor kind; callers expect whole objects
      for (const item of page.items ?? []) {
        items.push({ ...item, apiVersion: apiVersionOf(type), kind: type.kind });
      }
      token = page.metadata?.continue || undefined;
      if (singlePage || !token) {
        return {
          items,
          resourceVersion: page.metadata?.resourceVersion ?? '',
          continue: singlePage ? token : undefined,
        };
      }
    }
  }

  create<T extends KubeObject>(type: ResourceType, obj: T, options: WriteOptions = {}): Promise<T> {
    return this.write('POST', type, obj, undefined, options);
  }

  replace<T extends KubeObject>(
    type: ResourceType,
    obj: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`cannot replace a ${type.kind} without metadata.name`);
    return this.write('PUT', type, obj, name, options);
  }

  /** POST (create, `name` undefined) or PUT (replace) of a whole object. */
  private write<T extends KubeObject>(
    method: 'POST' | 'PUT',
    type: ResourceType,
    obj: T,
    name: string | undefined,
    options: WriteOptions,
  ): Promise<T> {
    return this.request<T>(
      method,
      this.path(type, obj.metadata?.namespace, name, options.subresource),
      {
        body: JSON.stringify({ apiVersion: apiVersionOf(type), kind: type.kind, ...obj }),
        contentType: 'application/json',
        query: { fieldManager: options.fieldManager },
      },
    );
  }

  patch<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    patchType: PatchType,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    return this.request<T>('PATCH', this.path(type, namespace, name, options.subresource), {
      body: JSON.stringify(patch),
      contentType: contentTypes[patchType],
      query: {
        fieldManager:
          options.fieldManager ?? (patchType === 'apply' ? this.options.userAgent : undefined),
        force: options.force === undefined ? undefined : String(options.force),
      },
    });
  }

  async delete(
    type: ResourceType,
    name: string,
    namespace?: string,
    options: DeleteOptions = {},
  ): Promise<void> {
    await this.request('DELETE', this.path(type, namespace, name), {
      body: JSON.stringify({ apiVersion: 'v1', kind: 'DeleteOptions', ...options }),
      contentType: 'application/json',
    });
  }

  async watch<T extends KubeObject>(
    type: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    onDone: (error?: unknown) => void,
  ): Promise<WatchHandle> {
    const abort = new AbortController();
    let finished = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(idleTimer);
      abort.abort();
      onDone(error);
    };
    const resetIdleTimer = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(
        () => finish(new WatchIdleError(type.plural, this.options.watchIdleTimeoutMs)),
        this.options.watchIdleTimeoutMs,
      );
      idleTimer.unref();
    };
    const handle: WatchHandle = { stop: () => finish() };

    let response: TransportResponse;
    try {
      resetIdleTimer();
      response = await this.send('GET', this.path(type, options.namespace), {
        query: {
          watch: 'true',
          resourceVersion: options.resourceVersion,
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          allowWatchBookmarks: options.allowWatchBookmarks ? 'true' : undefined,
          timeoutSeconds:
            options.timeoutSeconds === undefined ? undefined : String(options.timeoutSeconds),
        },
        signal: abort.signal,
        rateLimited: false,
      });
    } catch (error) {
      finish(error);
      return handle;
    }
    if (response.status !== 200) {
      const text = await response.text().catch(() => '');
      finish(ApiError.fromResponse(response.status, text, `watch ${type.plural}`));
      return handle;
    }
    void this.readLines(response.chunks(), (line) => {
      resetIdleTimer();
      let event: WatchEvent<T>;
      try {
        event = JSON.parse(line) as WatchEvent<T>;
      } catch {
        finish(new Error(`watch ${type.plural}: malformed event ${line.slice(0, 200)}`));
        return;
      }
      onEvent(event);
    }).then(
      () => finish(),
      (error: unknown) => finish(abort.signal.aborted ? undefined : error),
    );
    return handle;
  }

  private async readLines(
    stream: AsyncIterable<Uint8Array>,
    onLine: (line: string) => void,
  ): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of stream) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) onLine(line);
      }
    }
    const rest = (buffered + decoder.decode()).trim();
    if (rest) onLine(rest);
  }

  private path(
    type: ResourceType,
    namespace?: string,
    name?: string,
    subresource?: string,
  ): string {
    let path = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
    if (type.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
    path += `/${type.plural}`;
    if (name !== undefined) path += `/${encodeURIComponent(name)}`;
    if (subresource) path += `/${subresource}`;
    return path;
  }

  private async request<T>(method: HttpMethod, path: string, options: Body = {}): Promise<T> {
    const response = await this.send(method, path, {
      ...options,
      rateLimited: true,
      timeoutMs: this.options.requestTimeoutMs,
    });
    const text = await response.text();
    if (response.status >= 200 && response.status < 300) {
      return (text ? JSON.parse(text) : undefined) as T;
    }
    throw ApiError.fromResponse(response.status, text, `${method} ${path}`);
  }

  private async send(
    method: HttpMethod,
    path: string,
    options: Body & { signal?: AbortSignal; timeoutMs?: number; rateLimited: boolean },
  ): Promise<TransportResponse> {
    if (options.rateLimited) {
      const wait = this.bucket.reserve();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) query.set(key, value);
    }
    const search = query.size > 0 ? `?${query.toString()}` : '';
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'User-Agent': this.options.userAgent,
    };
    if (options.contentType) headers['Content-Type'] = options.contentType;
    this.requestCount++;
    return this.transport.send({
      method,
      path: path + search,
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
  }
}
