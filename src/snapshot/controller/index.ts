/**
 * The embedded snapshot controller. `startSnapshotController({ kubeConfig })` runs it as its
 * own leader-elected part; `createSnapshotController({ client, informers, recorder })` gives a
 * Runnable to add to a Manager shared with other parts (all-in-one).
 */
export * from './controller.js';
export * from './plan.js';
