/**
 * The Kubernetes controller toolkit every snapback controller is built on.
 *
 * - `KubeClient` (client.ts): get/list/create/replace/patch/delete/watch on any `ResourceType`
 *   (resource.ts lists the built-in ones). `HttpKubeClient` talks to the API server with a
 *   client-side QPS limit; the unit tests' in-memory API server, `FakeKubeClient`, lives in
 *   test/support/fakes (resourceVersions, conflicts, finalizers, status subresource, watches,
 *   injected errors).
 *   Failures are `ApiError`s: test them with `isNotFound`, `isConflict`, `isAlreadyExists`.
 * - `Informer` (informer.ts): list+watch cache with bookmarks, relist on 410 and jittered
 *   backoff on errors; `get`, `list` (label/field selectors), custom indexes (`byIndex`),
 *   `on({ add, update, delete })`, `hasSynced`/`waitForSync`. `InformerFactory` shares one
 *   informer per type and scope.
 * - `WorkQueue` (workqueue.ts) with client-go semantics and rate limiters (rate-limit.ts).
 * - `Controller` (controller.ts): `watch(informer, { toKeys })` feeds keys to `workers` loops
 *   calling `reconcile(key) -> { requeueAfter? } | void`; throw to back off, throw
 *   `TerminalError` to stop retrying; `queueDepth` for metrics.
 * - `LeaderElector` (leader-election.ts): coordination.k8s.io/v1 Lease, 15 s / 10 s / 2 s.
 * - `Manager` (manager.ts): informers + controllers + optional leader election in one unit.
 * - `EventRecorder` (events.ts): `KubeEventRecorder` (core/v1 Events with count aggregation);
 *   the tests' `FakeEventRecorder` is in test/support/fakes.
 * - objects.ts: `setCondition`, finalizer add/remove, `patchStatusDiff` (merge patch on /status
 *   with observedGeneration), `createOrPatch`, merge-patch helpers.
 * - selectors.ts: label selector matching, parsing and formatting.
 */
export * from './client.js';
export * from './controller.js';
export * from './errors.js';
export * from './events.js';
export * from './http-client.js';
export * from './informer.js';
export * from './informer-factory.js';
export * from './leader-election.js';
export * from './manager.js';
export * from './objects.js';
export * from './rate-limit.js';
export * from './resource.js';
export * from './secrets.js';
export * from './selectors.js';
export * from './workqueue.js';
export * from './fresh-view.js';
