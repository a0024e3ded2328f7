import type { KubeClient } from './client.js';
import { InformerFactory, type InformerFactoryOptions } from './informer-factory.js';
import { LeaderElector, type LeaderElectionOptions } from './leader-election.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';

/** Something the manager runs while this process leads (a Controller is one). */
export interface Runnable {
  /** `signal` aborts the moment leadership is lost: stop acting at once. */
  start(signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  /** Controllers name themselves and report their work queue's length (for metrics). */
  readonly name?: string;
  readonly queueDepth?: number;
}

export type ManagerLeaderElection = Omit<
  LeaderElectionOptions,
  'client' | 'onStartedLeading' | 'onStoppedLeading' | 'logger'
>;

export interface ManagerOptions {
  /** Used by the caches and the lease; runnables write through `Manager.client` (fenced). */
  client: KubeClient;
  /** Without it, runnables start at once (a single replica, or tests). */
  leaderElection?: ManagerLeaderElection;
  informers?: InformerFactoryOptions;
  /**
   * After losing the lease, how long to wait for the runnables to return before ending with
   * `'lost'` anyway (they are aborted; one that ignores its signal must not keep the process).
   */
  lostGracePeriodMs?: number;
  logger?: Logger;
}

/** A write or a call refused because this replica no longer leads (or never did). */
export class LeadershipLostError extends Error {
  constructor(message = 'not the leader any more: refusing to act') {
    super(message);
    this.name = 'LeadershipLostError';
  }
}

/** Why the manager stopped: asked to (`stopped`) or because the lease was lost (`lost`). */
export type ManagerExit = 'stopped' | 'lost';

/**
 * Runs shared informers and controllers, as controller-runtime's manager: caches start at once
 * (so a standby replica is warm), runnables start only once the caches synced and, with leader
 * election, only while this replica holds the lease. Losing the lease stops every runnable and
 * ends the manager with `'lost'`, like controller-runtime (the process should exit and restart).
 *
 * Losing the lease acts at once, not after the reconciles in flight: the runnables' signal
 * aborts, their work queues stop handing out keys, every write through `client` or a `fence`d
 * client is refused and every call through `fenceCalls` is cancelled (its `signal` aborts).
 * Upstream components exit on loss for the same reason: a replica that lost the lease may
 * already have a successor, and two writers of one object is what the lease exists to prevent.
 */
export class Manager {
  /** The client runnables write through: writes are refused while this replica does not lead. */
  readonly client: KubeClient;
  readonly informers: InformerFactory;
  private readonly runnables: Runnable[] = [];
  private readonly options: ManagerOptions;
  private readonly logger: Logger;
  private readonly stopSignal = new AbortController();
  private startedRunnables: Runnable[] = [];
  private exit: Promise<ManagerExit> | undefined;
  private leader: LeaderElector | undefined;
  /** Aborts when the current leadership term is lost; undefined while not leading. */
  private term: AbortController | undefined;

  constructor(options: ManagerOptions) {
    this.options = options;
    this.client = this.fence(options.client);
    this.logger = (options.logger ?? silentLogger()).child({ component: 'manager' });
    this.informers = new InformerFactory(options.client, {
      logger: options.logger,
      ...options.informers,
    });
  }

  add(runnable: Runnable): this {
    this.runnables.push(runnable);
    return this;
  }

  /** Keys waiting in each added controller's work queue, by controller name. */
  queueDepths(): Record<string, number> {
    const depths: Record<string, number> = {};
    for (const runnable of this.runnables) {
      if (runnable.name !== undefined && runnable.queueDepth !== undefined) {
        depths[runnable.name] = (depths[runnable.name] ?? 0) + runnable.queueDepth;
      }
    }
    return depths;
  }

  /**
   * `client` with every write (create, replace, patch, delete) refused with a
   * `LeadershipLostError` unless this replica leads; reads and watches pass through. Without
   * leader election nothing is refused.
   */
  fence(client: KubeClient): KubeClient {
    const guard =
      <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
      (...args: A): Promise<R> => {
        const refusal = this.refusal();
        return refusal ? Promise.reject(refusal) : write(...args);
      };
    return {
      get: (type, name, namespace) => client.get(type, name, namespace),
      list: (type, options) => client.list(type, options),
      watch: (type, options, onEvent, onDone) => client.watch(type, options, onEvent, onDone),
      create: guard((type, obj, options) => client.create(type, obj, options)),
      replace: guard((type, obj, options) => client.replace(type, obj, options)),
      patch: guard((type, name, namespace, patchType, patch, options) =>
        client.patch(type, name, namespace, patchType, patch, options),
      ),
      delete: guard((type, name, namespace, options) =>
        client.delete(type, name, namespace, options),
      ),
    } as KubeClient;
  }

  /**
   * `service` (an object of `(request, options?) => Promise` methods, such as a CSI service)
   * with every call refused unless this replica leads and, once started, cancelled when the
   * lease is lost: the call's `options.signal` aborts (combined with the caller's own signal).
   */
  fenceCalls<T extends object>(service: T): T {
    return new Proxy(service, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        return (request: unknown, options?: { signal?: AbortSignal }) => {
          const refusal = this.refusal();
          if (refusal) return Promise.reject(refusal);
          const term = this.term?.signal;
          const signal =
            term && options?.signal
              ? AbortSignal.any([term, options.signal])
              : (term ?? options?.signal);
          return (value as (...a: unknown[]) => unknown).call(target, request, {
            ...options,
            ...(signal ? { signal } : {}),
          });
        };
      },
    });
  }

  /** Whether the runnables are running (always true without leader election once started). */
  isLeader(): boolean {
    return this.leader ? this.leader.isLeader() : this.startedRunnables.length > 0;
  }

  /** Starts everything; the promise resolves when the manager ends (see `ManagerExit`). */
  run(): Promise<ManagerExit> {
    this.exit ??= this.runInner();
    return this.exit;
  }

  /** Stops the runnables (waiting for reconciles in flight), releases the lease, stops informers. */
  async stop(): Promise<ManagerExit> {
    this.stopSignal.abort();
    return this.exit ?? 'stopped';
  }

  private async runInner(): Promise<ManagerExit> {
    this.informers.start();
    try {
      if (!this.options.leaderElection) {
        await this.startRunnables(this.stopSignal.signal);
        await new Promise<void>((resolve) => {
          if (this.stopSignal.signal.aborted) resolve();
          this.stopSignal.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await this.stopRunnables();
        return 'stopped';
      }
      let lostAt: Promise<void> | undefined;
      this.leader = new LeaderElector({
        ...this.options.leaderElection,
        client: this.options.client,
        logger: this.options.logger,
        onStartedLeading: (signal) => {
          const term = new AbortController();
          this.term = term;
          const onEnd = () => {
            // a clean stop lets the reconciles in flight finish; a loss must not
            if (this.stopSignal.signal.aborted) return;
            term.abort(new LeadershipLostError('leadership lost: this replica stopped acting'));
            lostAt = this.stopRunnables();
          };
          if (signal.aborted) onEnd();
          else signal.addEventListener('abort', onEnd, { once: true });
          return this.startRunnables(signal, term.signal);
        },
        onStoppedLeading: async () => {
          if (lostAt) await this.withinGrace(lostAt);
          else await this.stopRunnables();
          this.term = undefined;
        },
      });
      return await this.leader.run(this.stopSignal.signal);
    } finally {
      await this.informers.stop();
    }
  }

  /** Why a write or call must be refused now, if it must. */
  private refusal(): LeadershipLostError | undefined {
    if (!this.options.leaderElection) return undefined;
    if (!this.term) return new LeadershipLostError('not the leader: refusing to act');
    if (this.term.signal.aborted) return this.term.signal.reason as LeadershipLostError;
    return undefined;
  }

  private async withinGrace(stopping: Promise<void>): Promise<void> {
    const graceMs = this.options.lostGracePeriodMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
    });
    const outcome = await Promise.race([stopping.then(() => 'stopped' as const), expired]);
    clearTimeout(timer);
    if (outcome === 'expired') {
      this.logger.error('reconciles still running after leadership was lost; not waiting', {
        graceMs,
      });
    }
  }

  private async startRunnables(signal: AbortSignal, lost?: AbortSignal): Promise<void> {
    try {
      await this.informers.waitForSync(signal);
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    if (signal.aborted) return;
    for (const runnable of this.runnables) {
      this.startedRunnables.push(runnable);
      void runnable.start(lost).catch((error: unknown) => {
        this.logger.error('a runnable failed to start', { error: errorMessage(error) });
      });
    }
  }

  private async stopRunnables(): Promise<void> {
    const started = this.startedRunnables.splice(0);
    await Promise.all(started.map((runnable) => runnable.stop()));
  }
}
