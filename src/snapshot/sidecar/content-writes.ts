/**
 * The writes the content sidecar (./content-sidecar.ts) and its group paths
 * (./group-content-sidecar.ts) make to their contents the same way: each remembered over the
 * informer (OwnWrites), the being-created annotation that keeps a content from being deleted
 * while a driver call may still cut it, status by difference, a failure recorded once per
 * message, and the Secret a driver call takes.
 */
import type { Clock } from '../../util/clock.js';
import type { EventRecorder, KubeClient, KubeObject, ResourceType } from '../../kube/index.js';
import { FreshView, OwnWrites, hasAnnotation } from '../../kube/index.js';
import type { Informer } from '../../kube/informer.js';
import { readSecretData } from '../../kube/secrets.js';
import { errorMessage, type Logger } from '../../observability/logger.js';
import type { ContentKind, ContentObject, SecretRef, StatusWithError } from './shared-plan.js';

export interface ContentWritesOptions<S extends StatusWithError, C extends ContentObject<S>> {
  client: KubeClient;
  resource: ResourceType;
  kind: ContentKind<S, C>;
  recorder: EventRecorder;
  clock: Clock;
  logger: Logger;
}

export class ContentWrites<
  S extends StatusWithError,
  C extends KubeObject & { status?: S },
> extends OwnWrites<C> {
  private readonly kind: ContentKind<S, C>;
  private readonly recorder: EventRecorder;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(informer: Informer<C>, options: ContentWritesOptions<S, C>) {
    super(options.client, options.resource, new FreshView(informer, options.clock));
    this.kind = options.kind;
    this.recorder = options.recorder;
    this.clock = options.clock;
    this.logger = options.logger;
  }

  /** Sets the being-created annotation before a create call (once). */
  markBeingCreated(content: C): Promise<C> {
    if (hasAnnotation(content, this.kind.beingCreated)) return Promise.resolve(content);
    return this.patchObject(content, {
      metadata: { annotations: { [this.kind.beingCreated]: 'yes' } },
    });
  }

  /** Removes the being-created annotation once the driver has answered for sure. */
  removeBeingCreated(content: C): Promise<C> {
    if (!hasAnnotation(content, this.kind.beingCreated)) return Promise.resolve(content);
    return this.patchObject(content, {
      metadata: { annotations: { [this.kind.beingCreated]: null } },
    });
  }

  /** Writes `next` by difference; no status (or no difference) writes nothing. */
  writeStatus(content: C, next: S | undefined): Promise<C> {
    return next ? this.patchStatusDiff(content, next) : Promise.resolve(content);
  }

  /**
   * Writes the error to the content's status and emits the Warning Event, once per distinct
   * message (as upstream, the Event goes out even when the status write fails). Returns
   * whether the message was new.
   */
  async recordFailure(
    content: C,
    reason: string,
    message: string,
    options: { keepReadyToUse?: boolean } = {},
  ): Promise<boolean> {
    const status = this.kind.statusWithError(content.status, message, this.clock.now(), options);
    if (!status) return false;
    this.recorder.event(content, 'Warning', reason, message);
    try {
      await this.writeStatus(content, status);
    } catch (error) {
      this.logger.warn(`could not record the failure on the ${this.kind.what}`, {
        name: content.metadata?.name,
        error: errorMessage(error),
      });
    }
    return true;
  }

  /** The data of the Secret `ref` names (none without a ref); throws naming the content. */
  async readSecret(ref: SecretRef | undefined, content: C): Promise<Record<string, string>> {
    if (!ref) return {};
    const data = await readSecretData(this.client, ref.name, ref.namespace).catch(() => undefined);
    if (!data) {
      throw new Error(
        `cannot get credentials for ${this.kind.what} ${content.metadata?.name}: ` +
          `secret ${ref.namespace}/${ref.name} could not be read`,
      );
    }
    return data;
  }
}
