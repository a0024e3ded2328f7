/**
 * The flags of `snapback controller` (and of the controllers `snapback all-in-one` runs), read
 * into StackOptions. Names, defaults and checks are upstream's where a part stands in for an
 * upstream component.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { ManagerLeaderElection } from '../kube/index.js';
import { loadClusterAccess } from '../kube/kubeconfig.js';
import type { Logger } from '../observability/logger.js';
import { parseFeatureGates } from '../provisioner/feature-gates.js';
import { parseGoBool } from '../util/bool.js';
import { parseDuration } from '../util/duration.js';
import { assertKnownFlags, flagLines, type FlagTable } from './flags.js';
import type { Parts, StackOptions } from './stack.js';

const bool = (help: string) => ({ help, boolean: true }) as const;

/** The flags of `snapback controller`. */
export const controllerFlags: FlagTable = {
  kubeconfig: { help: 'kubeconfig file (default: $KUBECONFIG, else in-cluster)' },
  'csi-address': {
    help: 'CSI driver socket for the snapshotter and provisioner, unix:///path/csi.sock',
  },
  policy: bool('run the BackupPolicy and RestoreJob controllers (default true)'),
  'snapshot-controller': bool('run the embedded snapshot controller (default true)'),
  'csi-snapshotter': bool('run the embedded CSI snapshotter (default: true with --csi-address)'),
  'csi-provisioner': bool('run the embedded CSI provisioner (default: true with --csi-address)'),
  'leader-election': bool('elect one active replica through a Lease (default true)'),
  'leader-election-namespace': {
    help: 'namespace of the Lease (default: $POD_NAMESPACE, else default)',
  },
  'leader-election-name': { help: 'name of the Lease (default snapback-controller)' },
  'leader-election-identity': { help: "this replica's identity (default: hostname_<random>)" },
  'leader-election-lease-duration': { help: 'lease duration (default 15s)' },
  'leader-election-renew-deadline': { help: 'renew deadline (default 10s)' },
  'leader-election-retry-period': { help: 'retry period (default 2s)' },
  'kube-api-qps': { help: 'client-side request rate to the API server, per part (default 50)' },
  'kube-api-burst': { help: 'client-side burst, per part (default 100)' },
  'worker-threads': { help: 'concurrent reconciles per controller (default 10)' },
  timeout: {
    help: 'deadline of CSI calls while finding the driver, and the default of both part timeouts (default 1m)',
  },
  'csi-snapshotter-timeout': {
    help: "deadline of each of the snapshotter's CSI calls (default 1m)",
  },
  'csi-provisioner-timeout': {
    help: "deadline of each of the provisioner's CSI calls (default 10s)",
  },
  'snapshot-name-prefix': {
    help: 'CreateSnapshot names are <prefix>-<VolumeSnapshot UID> (default snapshot)',
  },
  'snapshot-name-uuid-length': {
    help: 'cut that UID, dashes removed, to this many characters (1-32); -1 keeps it (default -1)',
  },
  'volume-name-prefix': { help: 'PV and CreateVolume names are <prefix>-<PVC UID> (default pvc)' },
  'volume-name-uuid-length': {
    help: 'cut that UID, dashes removed, to this many characters (1-32); -1 keeps it (default -1)',
  },
  'defer-to-upstream': bool(
    "keep each embedded part idle while upstream's counterpart holds its Lease (default true)",
  ),
  'upstream-lease-namespaces': {
    help: "comma-separated namespaces where upstream's Leases are looked for (default: all)",
  },
  'upstream-check-period': { help: "how often upstream's Leases are checked again (default 30s)" },
  'prevent-volume-mode-conversion': bool(
    'refuse restores into another volumeMode unless the content allows it (default true)',
  ),
  'feature-gates': {
    help: 'provisioner gates, Name=true|false,...: CrossNamespaceVolumeDataSource (default false)',
  },
  'retry-interval-start': { help: 'first retry delay after a failure (default 1s)' },
  'retry-interval-max': { help: 'longest retry delay (default 5m)' },
  'resync-period': { help: 'how often every cached object is reconciled again (default 15m)' },
  'extra-create-metadata': bool('pass object names to CreateSnapshot/CreateVolume (default false)'),
  'http-endpoint': { help: 'host:port serving /healthz, /readyz and /metrics (default: none)' },
  hooks: bool('run BackupPolicy hooks by exec in the pods of snapshotted PVCs (default false)'),
  'restore-swap': bool(
    'let RestoreJobs with mode Swap scale a StatefulSet down and swap its PVCs (default false)',
  ),
  verify: bool('run BackupPolicy restore drills (spec.verify) as Jobs (default false)'),
  'verify-image': { help: 'image the restore-drill Jobs run (required with --verify)' },
  'csi-proto': { help: 'path of csi.proto (default: $SNAPBACK_CSI_PROTO, else dist/csi.proto)' },
};

/** The usage of a command that runs the controllers: its own flags first, then theirs. */
export function stackUsage(command: string, table: FlagTable = controllerFlags): string {
  return [`usage: snapback ${command} [flags]`, '', ...flagLines(table, 32)].join('\n');
}

/**
 * StackOptions from flags. `defaults` lets `all-in-one` point the CSI parts at its own driver.
 * Unknown flags are an error naming the known ones.
 */
export function stackOptions(
  flags: Record<string, string>,
  defaults: { csiEndpoint?: string },
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): StackOptions {
  assertKnownFlags(controllerFlags, flags);
  const csiEndpoint = flags['csi-address'] ?? defaults.csiEndpoint;
  return {
    cluster: loadClusterAccess(flags.kubeconfig ? { file: flags.kubeconfig } : {}),
    ...(flags.kubeconfig ? { kubeconfigFile: flags.kubeconfig } : {}),
    parts: partsOf(flags, csiEndpoint !== undefined),
    csiEndpoint,
    csiProto: flags['csi-proto'],
    leaderElection: leaderElectionOf(flags, env),
    qps: parseNumber(flags, 'kube-api-qps', 50),
    burst: parseNumber(flags, 'kube-api-burst', 100),
    workers: parseNumber(flags, 'worker-threads', 10),
    ...csiTimeouts(flags),
    ...objectNames(flags),
    preventVolumeModeConversion: parseBoolean(flags, 'prevent-volume-mode-conversion', true),
    deferToUpstream: parseBoolean(flags, 'defer-to-upstream', true),
    upstreamLeaseNamespaces: parseNamespaces(flags, 'upstream-lease-namespaces'),
    upstreamCheckPeriodMs: parseDeadline(flags, 'upstream-check-period', '30s'),
    featureGates: parseFeatureGates(flags['feature-gates']),
    retryIntervalStartMs: parseDurationFlag(flags, 'retry-interval-start', '1s'),
    retryIntervalMaxMs: parseDurationFlag(flags, 'retry-interval-max', '5m'),
    resyncPeriodMs: parseDurationFlag(flags, 'resync-period', '15m'),
    extraCreateMetadata: parseBoolean(flags, 'extra-create-metadata', false),
    httpEndpoint: flags['http-endpoint'],
    hooks: parseBoolean(flags, 'hooks', false),
    restoreSwap: parseBoolean(flags, 'restore-swap', false),
    ...verifyOf(flags),
    logger,
  };
}

/** `--verify` and the image its Jobs run: a drill needs one, so --verify without it is an error. */
function verifyOf(flags: Record<string, string>): { verifyImage?: string } {
  if (!parseBoolean(flags, 'verify', false)) return {};
  const image = flags['verify-image'];
  if (!image) throw new Error('--verify needs --verify-image, the image the drill Jobs run');
  return { verifyImage: image };
}

/** The CSI parts run by default when there is a driver to drive. */
function partsOf(flags: Record<string, string>, withDriver: boolean): Parts {
  return {
    policy: parseBoolean(flags, 'policy', true),
    snapshotController: parseBoolean(flags, 'snapshot-controller', true),
    snapshotter: parseBoolean(flags, 'csi-snapshotter', withDriver),
    provisioner: parseBoolean(flags, 'csi-provisioner', withDriver),
  };
}

function leaderElectionOf(
  flags: Record<string, string>,
  env: NodeJS.ProcessEnv,
): ManagerLeaderElection | undefined {
  if (!parseBoolean(flags, 'leader-election', true)) return undefined;
  return {
    namespace: flags['leader-election-namespace'] ?? env.POD_NAMESPACE ?? 'default',
    name: flags['leader-election-name'] ?? 'snapback-controller',
    identity: flags['leader-election-identity'] ?? `${os.hostname()}_${randomUUID()}`,
    leaseDurationMs: parseDurationFlag(flags, 'leader-election-lease-duration', '15s'),
    renewDeadlineMs: parseDurationFlag(flags, 'leader-election-renew-deadline', '10s'),
    retryPeriodMs: parseDurationFlag(flags, 'leader-election-retry-period', '2s'),
    releaseOnCancel: true,
  };
}

function csiTimeouts(flags: Record<string, string>) {
  return {
    timeoutMs: parseDeadline(flags, 'timeout', '1m'),
    // upstream's defaults (1m and 10s), unless --timeout sets both
    snapshotterTimeoutMs: parseDeadline(flags, 'csi-snapshotter-timeout', flags.timeout ?? '1m'),
    provisionerTimeoutMs: parseDeadline(flags, 'csi-provisioner-timeout', flags.timeout ?? '10s'),
  };
}

function objectNames(flags: Record<string, string>) {
  return {
    snapshotNamePrefix: parseNamePrefix(flags, 'snapshot-name-prefix', 'snapshot'),
    snapshotNameUuidLength: parseUuidLength(flags, 'snapshot-name-uuid-length'),
    volumeNamePrefix: parseNamePrefix(flags, 'volume-name-prefix', 'pvc', 'PersistentVolume'),
    volumeNameUuidLength: parseUuidLength(flags, 'volume-name-uuid-length'),
  };
}

function parseDurationFlag(flags: Record<string, string>, name: string, fallback: string): number {
  return parseDuration(flags[name] ?? fallback, name);
}

/** A duration that must be longer than 0. */
function parseDeadline(flags: Record<string, string>, name: string, fallback: string): number {
  const ms = parseDurationFlag(flags, name, fallback);
  if (ms <= 0)
    throw new Error(`--${name} must be longer than 0 (got "${flags[name] ?? fallback}")`);
  return ms;
}

/** A boolean flag, read as Go's flag package reads one (strconv.ParseBool). */
function parseBoolean(flags: Record<string, string>, name: string, fallback: boolean): boolean {
  const value = flags[name];
  if (value === undefined) return fallback;
  const parsed = parseGoBool(value);
  if (parsed === undefined) throw new Error(`--${name} takes true or false (got "${value}")`);
  return parsed;
}

/** A UID without its dashes has 32 characters. */
const UUID_CHARACTERS = 32;

/** `--*-name-uuid-length`: -1 (the whole UID, dashes kept) or 1 to 32 characters. */
function parseUuidLength(flags: Record<string, string>, name: string): number {
  const value = flags[name];
  if (value === undefined) return -1;
  const length = Number(value);
  if (
    value.trim() === '' ||
    !Number.isInteger(length) ||
    (length !== -1 && (length < 1 || length > UUID_CHARACTERS))
  ) {
    throw new Error(
      `--${name} takes -1 (the whole UID) or a length from 1 to ${UUID_CHARACTERS} (got "${value}")`,
    );
  }
  return length;
}

/** A DNS-1123 label, as a namespace name must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A comma-separated list of namespaces; absent means every namespace. */
function parseNamespaces(flags: Record<string, string>, name: string): string[] | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const namespaces = value
    .split(',')
    .map((ns) => ns.trim())
    .filter((ns) => ns !== '');
  const bad = namespaces.filter((ns) => !DNS_LABEL.test(ns) || ns.length > 63);
  if (namespaces.length === 0 || bad.length > 0) {
    throw new Error(
      `--${name} takes comma-separated namespace names (got "${value}"` +
        `${bad.length > 0 ? `; not a namespace: ${bad.join(', ')}` : ''}); omit it to look in every namespace`,
    );
  }
  return namespaces;
}

/** A DNS-1123 subdomain, as the name of a PersistentVolume must be. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function parseNamePrefix(
  flags: Record<string, string>,
  name: string,
  fallback: string,
  objectName?: string,
): string {
  const prefix = flags[name] ?? fallback;
  if (prefix === '') throw new Error(`--${name} cannot be empty`);
  if (objectName && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253 - 37)) {
    throw new Error(
      `--${name} "${prefix}" would make invalid ${objectName} names: use lower-case letters, ` +
        'digits, "-" and "." (starting and ending with a letter or digit), at most 216 characters',
    );
  }
  return prefix;
}

function parseNumber(flags: Record<string, string>, name: string, fallback: number): number {
  const value = flags[name];
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new Error(`--${name} takes a positive number (got "${value}")`);
  }
  return number;
}
