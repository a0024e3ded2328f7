export * from './v1alpha1.js';
export * from './snapshot.js';
export * from './group-snapshot.js';
export * from './csi-parameters.js';
export { isPositiveQuantity } from './quantity.js';
export type { ApiObjectMeta } from './meta.js';
