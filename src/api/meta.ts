import type { V1ObjectMeta } from '@kubernetes/client-node';

/**
 * Object metadata as it arrives on the wire: client-node's V1ObjectMeta declares timestamps
 * as Date, but raw JSON from the API server (watch events, patches) carries RFC 3339 strings.
 */
export type ApiObjectMeta = Omit<V1ObjectMeta, 'creationTimestamp' | 'deletionTimestamp'> & {
  creationTimestamp?: Date | string;
  deletionTimestamp?: Date | string;
};
