import path from 'node:path';

import { DiskError, invalidArgument, type DiskErrorCode } from '../../../csi/errors.js';

/** CSI asks drivers to accept names of at least 128 bytes; longer ones are refused. */
export const maxNameBytes = 128;

/**
 * Names become file names under the root, so only a conservative alphabet is accepted: it has
 * no separators and cannot start with a dot, so no name can reach outside its directory.
 */
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function nameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name) > maxNameBytes) {
    return `is ${Buffer.byteLength(name)} bytes long; at most ${maxNameBytes} are allowed`;
  }
  if (!namePattern.test(name)) {
    return 'may only hold letters, digits, ".", "_" and "-", and must start with a letter or digit';
  }
  return undefined;
}

/** The name as an id, or INVALID_ARGUMENT saying what is wrong with it. */
export type ObjectKind = 'volume' | 'snapshot' | 'group snapshot';

export function checkName(kind: ObjectKind, name: string): string {
  const problem = nameProblem(name);
  if (problem) throw invalidArgument(`${kind} name "${truncate(name)}" ${problem}`);
  return name;
}

/** Ids are names; an id no name could produce names nothing that exists. */
export const isKnownIdShape = (id: string): boolean => nameProblem(id) === undefined;

/**
 * CSI ids are `<name>@<node>`: a volume or snapshot lives on the node that created it, and
 * only that node's driver may answer for it. Neither names nor Kubernetes node names hold an
 * "@", so the split is unambiguous. An id without one was issued before ids named their node
 * and names an object on this node.
 */
export const nodeSeparator = '@';

/** Where an id says its object lives, seen from `thisNode`. */
export type IdLocation =
  | { where: 'here'; name: string }
  | { where: 'elsewhere'; node: string }
  /** No name could produce the id: no object has it. */
  | { where: 'nowhere' };

export function locateId(id: string, thisNode: string): IdLocation {
  const parts = id.split(nodeSeparator);
  if (parts.length > 2) return { where: 'nowhere' };
  const [name, node = thisNode] = parts as [string, string?];
  if (!isKnownIdShape(name) || nodeIdProblem(node) !== undefined) return { where: 'nowhere' };
  return node === thisNode ? { where: 'here', name } : { where: 'elsewhere', node };
}

/**
 * The name under the root of the object `id` refers to; undefined when no object can have that
 * id. An object of another node is refused with `code`, naming that node: only its driver can
 * act on it, and any answer from here (NOT_FOUND, or OK to a delete) would be false.
 */
export function ownName(
  kind: ObjectKind,
  id: string,
  thisNode: string,
  code: DiskErrorCode,
  action: string,
): string | undefined {
  const location = locateId(id, thisNode);
  if (location.where === 'here') return location.name;
  if (location.where === 'nowhere') return undefined;
  throw new DiskError(
    code,
    `${kind} ${id} lives on node ${location.node}, not on node ${thisNode} that this driver ` +
      `serves: only the driver on node ${location.node} can ${action} it`,
  );
}

/** The CSI id of the object `name` on `node`. */
export const qualifiedId = (name: string, node: string): string => `${name}${nodeSeparator}${node}`;

/** Kubernetes node names are DNS subdomains (at most 253 bytes): no "@", no "/". */
export function nodeIdProblem(nodeId: string): string | undefined {
  if (Buffer.byteLength(nodeId) > 253) return 'is longer than 253 bytes';
  if (!namePattern.test(nodeId)) {
    return 'may only hold letters, digits, ".", "_" and "-", and must start with a letter or digit';
  }
  return undefined;
}

const truncate = (s: string): string => (s.length > 80 ? `${s.slice(0, 80)}...` : s);

/**
 * Where everything lives under the root:
 *   disks/<id>.img, disks/<id>.json          a disk image and its metadata
 *   snapshots/<id>.img, snapshots/<id>.json  a snapshot copy and its metadata
 *   groups/<id>.json                          a group snapshot's metadata (its members are
 *                                             snapshots above)
 *   tmp/                                      copies in progress (removed at start-up)
 *   driver.lock                               flock(2)ed by the driver using the root
 */
export class Layout {
  readonly root: string;
  readonly disks: string;
  readonly snapshots: string;
  readonly groups: string;
  readonly tmp: string;
  readonly lock: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.disks = path.join(this.root, 'disks');
    this.snapshots = path.join(this.root, 'snapshots');
    this.groups = path.join(this.root, 'groups');
    this.tmp = path.join(this.root, 'tmp');
    this.lock = path.join(this.root, 'driver.lock');
  }

  diskImage(id: string): string {
    return this.inside(this.disks, `${id}.img`);
  }

  diskMeta(id: string): string {
    return this.inside(this.disks, `${id}.json`);
  }

  snapshotImage(id: string): string {
    return this.inside(this.snapshots, `${id}.img`);
  }

  snapshotMeta(id: string): string {
    return this.inside(this.snapshots, `${id}.json`);
  }

  groupMeta(id: string): string {
    return this.inside(this.groups, `${id}.json`);
  }

  /** A fresh file name for a copy in progress. */
  tmpFile(kind: 'disk' | 'snapshot', id: string): string {
    return this.inside(this.tmp, `${kind}-${id}-${process.pid}-${Date.now()}.img`);
  }

  /** The last line of defence: a path built from an id must stay in its directory. */
  private inside(dir: string, file: string): string {
    const full = path.resolve(dir, file);
    if (path.dirname(full) !== dir) throw invalidArgument(`"${file}" is not a valid name`);
    return full;
  }
}
