import { aborted } from '../csi/errors.js';

/**
 * At most one operation per volume or snapshot at a time. CSI asks a driver to answer a call
 * for an object that already has one in progress with ABORTED, so the caller retries later
 * instead of two calls racing on the same disk.
 */
export class OperationLocks {
  private readonly held = new Set<string>();

  async run<T>(keys: string[], operation: () => Promise<T>): Promise<T> {
    const busy = keys.find((key) => this.held.has(key));
    if (busy !== undefined) {
      throw aborted(`an operation on ${busy} is already in progress; retry later`);
    }
    for (const key of keys) this.held.add(key);
    try {
      return await operation();
    } finally {
      for (const key of keys) this.held.delete(key);
    }
  }
}
