/**
 * The embedded snapshot controller. `createSnapshotController({ client, informers, recorder })`
 * gives a Runnable to add to a Manager shared with other parts; the CLI's startStack
 * (src/cli/stack.ts) is what wires it, with its clients, its lease and its Events.
 */
export * from './snapshot-controller.js';
export * from './plan.js';
