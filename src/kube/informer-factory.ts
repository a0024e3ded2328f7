import type { KubeClient } from './client.js';
import { Informer, stripUnreadFields, type IndexFunc } from './informer.js';
import type { Logger } from '../observability/logger.js';
import type { KubeObject, ResourceType } from './resource.js';

export interface InformerFactoryOptions {
  resyncPeriodMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * What every informer keeps of an object (see InformerOptions.transform); by default
   * `stripUnreadFields`: no managedFields, no last-applied-configuration annotation.
   */
  transform?: <T extends KubeObject>(obj: T) => T;
  logger?: Logger;
}

export interface SharedInformerOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Added to the shared informer if not there yet (index names are global per informer). */
  indexers?: Record<string, IndexFunc<T>>;
}

/**
 * One informer per resource type and scope, shared by every controller that asks for it (as
 * client-go's SharedInformerFactory), so two controllers watching PVCs cost one watch.
 */
export class InformerFactory {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private started = false;

  constructor(
    readonly client: KubeClient,
    private readonly options: InformerFactoryOptions = {},
  ) {}

  informer<T extends KubeObject>(
    type: ResourceType,
    options: SharedInformerOptions<T> = {},
  ): Informer<T> {
    const id = [
      type.group,
      type.version,
      type.plural,
      options.namespace ?? '',
      options.labelSelector ?? '',
      options.fieldSelector ?? '',
    ].join('|');
    let informer = this.informers.get(id) as Informer<T> | undefined;
    if (!informer) {
      informer = new Informer<T>({
        client: this.client,
        type,
        namespace: options.namespace,
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        resyncPeriodMs: this.options.resyncPeriodMs,
        backoffInitialMs: this.options.backoffInitialMs,
        backoffMaxMs: this.options.backoffMaxMs,
        transform: this.options.transform ?? stripUnreadFields,
        logger: this.options.logger,
      });
      this.informers.set(id, informer as unknown as Informer<KubeObject>);
      if (this.started) informer.start();
    }
    for (const [name, indexFunc] of Object.entries(options.indexers ?? {})) {
      if (!informer.hasIndex(name)) informer.addIndexer(name, indexFunc);
    }
    return informer;
  }

  /** Starts every informer, and any created later. */
  start(): void {
    this.started = true;
    for (const informer of this.informers.values()) informer.start();
  }

  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([...this.informers.values()].map((informer) => informer.waitForSync(signal)));
  }

  hasSynced(): boolean {
    return [...this.informers.values()].every((informer) => informer.hasSynced());
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([...this.informers.values()].map((informer) => informer.stop()));
  }
}
