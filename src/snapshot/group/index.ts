/**
 * The embedded group snapshot controller (groupsnapshot.storage.k8s.io/v1).
 * `createGroupSnapshotController({ client, informers, recorder })` gives a Runnable to add to
 * the Manager that runs the snapshot controller; it needs the group snapshot CRDs installed.
 */
export * from './group-snapshot-controller.js';
export * from './plan.js';
