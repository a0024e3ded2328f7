import type { KubeClient } from './client.js';
import { InformerFactory, type InformerFactoryOptions } from './informer-factory.js';
import { LeaderElector, type LeaderElectionOptions } from './leader-election.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';

/** Something the manager runs while this process leads (a Controller is one). */
export interface Runnable {
  start(): Promise<void>;
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
  client: KubeClient;
  /** Without it, runnables start at once (a single replica, or tests). */
  leaderElection?: ManagerLeaderElection;
  informers?: InformerFactoryOptions;
  logger?: Logger;
}

/** Why the manager stopped: asked to (`stopped`) or because the lease was lost (`lost`). */
export type ManagerExit = 'stopped' | 'lost';

/**
 * Runs shared informers and controllers, as controller-runtime's manager: caches start at once
 * (so a standby replica is warm), runnables start only once the caches synced and, with leader
 * election, only while this replica holds the lease. Losing the lease stops every runnable and
 * ends the manager with `'lost'`, like controller-runtime (the process should exit and restart).
 */
export class Manager {
  readonly client: KubeClient;
  readonly informers: InformerFactory;
  private readonly runnables: Runnable[] = [];
  private readonly options: ManagerOptions;
  private readonly logger: Logger;
  private readonly stopSignal = new AbortController();
  private startedRunnables: Runnable[] = [];
  private exit: Promise<ManagerExit> | undefined;
  private leader: LeaderElector | undefined;

  constructor(options: ManagerOptions) {
    this.options = options;
    this.client = options.client;
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
      this.leader = new LeaderElector({
        ...this.options.leaderElection,
        client: this.client,
        logger: this.options.logger,
        onStartedLeading: (signal) => this.startRunnables(signal),
        onStoppedLeading: () => this.stopRunnables(),
      });
      return await this.leader.run(this.stopSignal.signal);
    } finally {
      await this.informers.stop();
    }
  }

  private async startRunnables(signal: AbortSignal): Promise<void> {
    try {
      await this.informers.waitForSync(signal);
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    if (signal.aborted) return;
    for (const runnable of this.runnables) {
      this.startedRunnables.push(runnable);
      void runnable.start().catch((error: unknown) => {
        this.logger.error('a runnable failed to start', { error: errorMessage(error) });
      });
    }
  }

  private async stopRunnables(): Promise<void> {
    const started = this.startedRunnables.splice(0);
    await Promise.all(started.map((runnable) => runnable.stop()));
  }
}
