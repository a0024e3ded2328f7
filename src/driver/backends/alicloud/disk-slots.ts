import { aborted } from '../../../csi/errors.js';

/**
 * One snapshot in progress per disk, as ECS allows. A slot is taken before CreateSnapshot
 * and given back when ECS reports the snapshot no longer progressing, which can be long
 * after the CSI call returned; the next snapshot of the same disk waits for it (bounded),
 * rather than being refused by ECS with IncorrectDiskStatus.CreatingSnapshot.
 */
export class DiskSnapshotSlots {
  private readonly queues = new Map<string, { grant: () => void }[]>();

  /** Resolves with the release function, or throws ABORTED after `timeoutMs`. */
  acquire(diskId: string, timeoutMs: number): Promise<() => void> {
    const queue = this.queues.get(diskId);
    if (!queue) {
      this.queues.set(diskId, []);
      return Promise.resolve(this.releaser(diskId));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser(diskId));
        },
      };
      const timer = setTimeout(() => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        reject(
          aborted(
            `disk ${diskId} has a snapshot in progress and ECS takes one at a time; retry when it completes`,
          ),
        );
      }, timeoutMs);
      queue.push(waiter);
    });
  }

  busy(diskId: string): boolean {
    return this.queues.has(diskId);
  }

  private releaser(diskId: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.queues.get(diskId);
      const next = queue?.shift();
      if (next) next.grant();
      else this.queues.delete(diskId);
    };
  }
}
