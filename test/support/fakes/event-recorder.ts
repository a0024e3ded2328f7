import type { EventRecorder, EventType } from '../../../src/kube/events.js';
import { keyOf, type KubeObject } from '../../../src/kube/resource.js';

export interface RecordedEvent {
  /** `namespace/name` of the involved object. */
  object: string;
  kind?: string;
  type: EventType;
  reason: string;
  message: string;
}

/** Keeps events in memory for assertions, as client-go's FakeRecorder. */
export class FakeEventRecorder implements EventRecorder {
  readonly events: RecordedEvent[] = [];

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ object: keyOf(obj), kind: obj.kind, type, reason, message });
  }

  /** `"<type> <reason> <message>"` lines, the format upstream's tests match on. */
  get lines(): string[] {
    return this.events.map((event) => `${event.type} ${event.reason} ${event.message}`);
  }

  clear(): void {
    this.events.length = 0;
  }
}
