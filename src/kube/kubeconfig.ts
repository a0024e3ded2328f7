/**
 * Where the API server is and how to authenticate to it, read from a kubeconfig file, from
 * `KUBECONFIG`, from `~/.kube/config` or from the pod's service account, in the order
 * `@kubernetes/client-node`'s `loadFromDefault` uses. Our own loader, so that a process talks
 * to the API server without loading client-node at run time (its KubeConfig pulls in every
 * generated API model: about 80 MiB of resident memory, see bench/idle).
 *
 * Supported credentials: bearer tokens (inline, token files re-read as they rotate), client
 * certificates, basic auth and exec credential plugins that return a token (client.authentication.k8s.io
 * ExecCredential). Anything else is refused with a message that names it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type * as Yaml from 'yaml';

/** A cluster entry, with the field names client-node's KubeConfig uses. */
export interface KubeconfigCluster {
  name?: string;
  server: string;
  caData?: string;
  caFile?: string;
  skipTLSVerify?: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}

/** A user entry, with the field names client-node's KubeConfig uses. */
export interface KubeconfigUser {
  name?: string;
  token?: string;
  /** kubeconfig's `tokenFile`. */
  tokenFile?: string;
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  exec?: ExecConfig;
  authProvider?: { name?: string; config?: Record<string, string> };
  impersonateUser?: string;
}

export interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  apiVersion?: string;
}

/** What the HTTP client needs: the server, its TLS settings, and the credential of each request. */
export interface ClusterAccess {
  /** The server's URL without a trailing slash. */
  server: string;
  tls: {
    ca?: Buffer;
    cert?: Buffer;
    key?: Buffer;
    rejectUnauthorized: boolean;
    servername?: string;
  };
  /** The Authorization header for the next request (tokens may rotate), or undefined. */
  authorization(): Promise<string | undefined>;
}

/** The part of client-node's KubeConfig the conversion reads (no run-time import of it). */
export interface KubeConfigLike {
  getCurrentCluster(): KubeconfigCluster | null;
  getCurrentUser(): KubeconfigUser | null;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Token files are read again after this long (client-go re-reads projected tokens each minute). */
const TOKEN_FILE_MAX_AGE_MS = 60_000;

export interface LoadOptions {
  /** An explicit kubeconfig file (the `--kubeconfig` flag); wins over everything else. */
  file?: string;
  /** A context other than the file's current-context. */
  context?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Where the service account's token and CA are mounted (tests). */
  serviceAccountDir?: string;
}

/**
 * Finds the configuration as client-node's loadFromDefault does: `file`, else every file of
 * `KUBECONFIG` (the first to name an entry wins), else `~/.kube/config`, else the service
 * account of the pod (KUBERNETES_SERVICE_HOST/PORT), else http://localhost:8080.
 */
export function loadClusterAccess(options: LoadOptions = {}): ClusterAccess {
  const env = options.env ?? process.env;
  const files = options.file
    ? [options.file]
    : (env.KUBECONFIG ?? '').split(path.delimiter).filter((file) => file.length > 0);
  if (files.length === 0) {
    const home = path.join(options.home ?? homedir(), '.kube', 'config');
    if (existsSync(home)) files.push(home);
  }
  if (files.length > 0) {
    const { cluster, user } = selectContext(
      files.map((file) => readKubeconfig(file)),
      options.context,
    );
    return clusterAccessOf(cluster, user);
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host && port) {
    const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
    const serverHost = host.includes(':') ? `[${host}]` : host;
    return clusterAccessOf(
      { server: `${scheme}://${serverHost}:${port}`, caFile: path.join(dir, 'ca.crt') },
      { tokenFile: path.join(dir, 'token') },
    );
  }
  return clusterAccessOf({ server: 'http://localhost:8080' }, {});
}

/** client-node's current cluster and user, converted (for callers that hold a KubeConfig). */
export function clusterAccessFromKubeConfig(config: KubeConfigLike): ClusterAccess {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  return clusterAccessOf(cluster, config.getCurrentUser() ?? {});
}

/**
 * yaml is loaded on the first kubeconfig file read, not at start-up: it holds about 13 MiB
 * resident, and a pod's in-cluster configuration needs none of it. `require` keeps the loaders
 * synchronous (yaml ships CommonJS; `import()` would make every caller async).
 */
let yamlParse: ((text: string) => unknown) | undefined;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof Yaml).parse;
  return yamlParse(text);
}

interface KubeconfigFile {
  currentContext?: string;
  contexts: Map<string, { cluster?: string; user?: string }>;
  clusters: Map<string, KubeconfigCluster>;
  users: Map<string, KubeconfigUser>;
}

/** Reads one kubeconfig file; relative paths in it are resolved against its folder. */
export function readKubeconfig(file: string): KubeconfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the kubeconfig ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new Error(`the kubeconfig ${file} is not YAML: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return parseKubeconfig(doc ?? {}, path.dirname(path.resolve(file)), file);
}

type Raw = Record<string, unknown>;

function entries(doc: Raw, key: string, inner: string, file: string): Map<string, Raw> {
  const list = doc[key] ?? [];
  if (!Array.isArray(list)) throw new Error(`the kubeconfig ${file}: ${key} is not a list`);
  const out = new Map<string, Raw>();
  for (const item of list as Raw[]) {
    const name = item?.name;
    if (typeof name !== 'string')
      throw new Error(`the kubeconfig ${file}: an entry of ${key} has no name`);
    out.set(name, (item[inner] ?? {}) as Raw);
  }
  return out;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function resolvePath(dir: string, value: unknown): string | undefined {
  const file = str(value);
  return file === undefined ? undefined : path.resolve(dir, file);
}

/** The entries of a parsed kubeconfig document, with client-node's field names. */
export function parseKubeconfig(doc: unknown, dir: string, file = 'kubeconfig'): KubeconfigFile {
  if (typeof doc !== 'object' || doc === null)
    throw new Error(`the kubeconfig ${file} is not a mapping`);
  const raw = doc as Raw;
  const clusters = new Map<string, KubeconfigCluster>();
  for (const [name, c] of entries(raw, 'clusters', 'cluster', file)) {
    clusters.set(name, {
      name,
      server: str(c.server) ?? '',
      ...defined({
        caData: str(c['certificate-authority-data']),
        caFile: resolvePath(dir, c['certificate-authority']),
        tlsServerName: str(c['tls-server-name']),
        proxyUrl: str(c['proxy-url']),
      }),
      skipTLSVerify: c['insecure-skip-tls-verify'] === true,
    });
  }
  const users = new Map<string, KubeconfigUser>();
  for (const [name, u] of entries(raw, 'users', 'user', file)) {
    const exec = u.exec as Raw | undefined;
    users.set(name, {
      name,
      ...defined({
        token: str(u.token),
        tokenFile: resolvePath(dir, u.tokenFile),
        certData: str(u['client-certificate-data']),
        certFile: resolvePath(dir, u['client-certificate']),
        keyData: str(u['client-key-data']),
        keyFile: resolvePath(dir, u['client-key']),
        username: str(u.username),
        password: str(u.password),
        impersonateUser: str(u.as),
        authProvider: u['auth-provider'] as KubeconfigUser['authProvider'],
        exec: exec
          ? {
              command: resolveCommand(dir, str(exec.command) ?? ''),
              args: (exec.args as string[] | undefined) ?? [],
              env: (exec.env as ExecConfig['env']) ?? [],
              ...defined({ apiVersion: str(exec.apiVersion) }),
            }
          : undefined,
      }),
    });
  }
  const contexts = new Map<string, { cluster?: string; user?: string }>();
  for (const [name, c] of entries(raw, 'contexts', 'context', file)) {
    contexts.set(name, defined({ cluster: str(c.cluster), user: str(c.user) }));
  }
  return { ...defined({ currentContext: str(raw['current-context']) }), contexts, clusters, users };
}

/** client-go runs a relative exec command from the kubeconfig's folder when it has a slash. */
function resolveCommand(dir: string, command: string): string {
  return command.includes('/') && !path.isAbsolute(command) ? path.resolve(dir, command) : command;
}

function defined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}

/** The cluster and user of the chosen context; with several files the first to name one wins. */
export function selectContext(
  files: KubeconfigFile[],
  context?: string,
): { cluster: KubeconfigCluster; user: KubeconfigUser } {
  const first = <T>(pick: (file: KubeconfigFile) => T | undefined): T | undefined => {
    for (const file of files) {
      const value = pick(file);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  const name = context ?? first((f) => f.currentContext);
  if (!name) throw new Error('the kubeconfig has no current-context');
  const ctx = first((f) => f.contexts.get(name));
  if (!ctx) throw new Error(`the kubeconfig has no context "${name}"`);
  const cluster = ctx.cluster ? first((f) => f.clusters.get(ctx.cluster!)) : undefined;
  if (!cluster) throw new Error(`context "${name}" names no cluster of the kubeconfig`);
  const user = ctx.user ? first((f) => f.users.get(ctx.user!)) : undefined;
  return { cluster, user: user ?? {} };
}

function readBytes(
  data: string | undefined,
  file: string | undefined,
  what: string,
): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`cannot read the ${what} ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Resolves a cluster and a user into what each request needs. */
export function clusterAccessOf(cluster: KubeconfigCluster, user: KubeconfigUser): ClusterAccess {
  if (!cluster.server) throw new Error('the kubeconfig cluster has no server');
  if (cluster.proxyUrl)
    throw new Error(`the kubeconfig's proxy-url (${cluster.proxyUrl}) is not supported`);
  if (user.impersonateUser)
    throw new Error('impersonation (the kubeconfig user\'s "as") is not supported');
  const ca = readBytes(cluster.caData, cluster.caFile, 'certificate authority');
  const cert = readBytes(user.certData, user.certFile, 'client certificate');
  const key = readBytes(user.keyData, user.keyFile, 'client key');
  if (Boolean(cert) !== Boolean(key)) {
    throw new Error(
      'the kubeconfig user has a client certificate without a key, or a key without one',
    );
  }
  return {
    server: cluster.server.replace(/\/+$/, ''),
    tls: {
      ...defined({ ca, cert, key, servername: cluster.tlsServerName }),
      rejectUnauthorized: !cluster.skipTLSVerify,
    },
    authorization: credentialOf(user),
  };
}

function credentialOf(user: KubeconfigUser): () => Promise<string | undefined> {
  if (user.token) {
    const header = `Bearer ${user.token}`;
    return () => Promise.resolve(header);
  }
  const provider = user.authProvider;
  const tokenFile =
    user.tokenFile ?? (provider?.name === 'tokenFile' ? provider.config?.tokenFile : undefined);
  if (provider && provider.name !== 'tokenFile') {
    throw new Error(
      `the kubeconfig's auth-provider "${provider.name ?? ''}" is not supported; use an exec credential plugin`,
    );
  }
  if (tokenFile) return tokenFileCredential(tokenFile);
  if (user.exec) return execCredential(user.exec);
  if (user.username !== undefined || user.password !== undefined) {
    const header = `Basic ${Buffer.from(`${user.username ?? ''}:${user.password ?? ''}`).toString('base64')}`;
    return () => Promise.resolve(header);
  }
  return () => Promise.resolve(undefined);
}

/** A token file, read again once a minute: projected service account tokens rotate. */
function tokenFileCredential(file: string): () => Promise<string | undefined> {
  let token: string | undefined;
  let readAt = 0;
  return () => {
    const now = Date.now();
    if (token === undefined || now - readAt > TOKEN_FILE_MAX_AGE_MS) {
      try {
        token = readFileSync(file, 'utf8').trim();
        readAt = now;
      } catch (error) {
        return Promise.reject(
          new Error(`cannot read the token file ${file}: ${(error as Error).message}`),
        );
      }
    }
    return Promise.resolve(token ? `Bearer ${token}` : undefined);
  };
}

const run = promisify(execFile);

/**
 * An exec credential plugin: run the command, read an ExecCredential from its output, keep the
 * token until its expirationTimestamp (for ever without one). One run at a time.
 */
function execCredential(exec: ExecConfig): () => Promise<string | undefined> {
  let cached: { header: string; expires: number } | undefined;
  let pending: Promise<string> | undefined;
  const fetchToken = async (): Promise<string> => {
    const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
    const env = { ...process.env };
    for (const { name, value } of exec.env ?? []) env[name] = value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify({
      apiVersion,
      kind: 'ExecCredential',
      spec: { interactive: false },
    });
    let stdout: string;
    try {
      ({ stdout } = await run(exec.command, exec.args ?? [], { env, timeout: 60_000 }));
    } catch (error) {
      throw new Error(
        `the exec credential plugin ${exec.command} failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    let status: { token?: string; expirationTimestamp?: string; clientCertificateData?: string };
    try {
      status = (JSON.parse(stdout) as { status?: typeof status }).status ?? {};
    } catch {
      throw new Error(`the exec credential plugin ${exec.command} printed no ExecCredential JSON`);
    }
    if (!status.token) {
      throw new Error(
        status.clientCertificateData
          ? `the exec credential plugin ${exec.command} returned a client certificate; only tokens are supported`
          : `the exec credential plugin ${exec.command} returned no token`,
      );
    }
    const header = `Bearer ${status.token}`;
    const expires = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : Infinity;
    cached = { header, expires };
    return header;
  };
  return async () => {
    if (cached && Date.now() < cached.expires - 10_000) return cached.header;
    pending ??= fetchToken().finally(() => (pending = undefined));
    return pending;
  };
}
