/**
 * Gateway API ReferenceGrant (gateway.networking.k8s.io/v1beta1), which lets objects of one
 * namespace refer to objects of another. The provisioner honours it for a PVC whose
 * `spec.dataSourceRef.namespace` names another namespace, as upstream external-provisioner
 * does behind its CrossNamespaceVolumeDataSource feature gate.
 */
import type { KubeObject, ResourceType } from '../kube/index.js';

export const REFERENCE_GRANT_GROUP = 'gateway.networking.k8s.io';

export const ReferenceGrants: ResourceType = {
  group: REFERENCE_GRANT_GROUP,
  version: 'v1beta1',
  plural: 'referencegrants',
  kind: 'ReferenceGrant',
  namespaced: true,
};

export interface ReferenceGrant extends KubeObject {
  spec?: {
    /** Who may refer: group, kind and namespace of the referring objects. */
    from?: Array<{ group?: string; kind?: string; namespace?: string }>;
    /** What they may refer to in the grant's namespace: group, kind, optionally one name. */
    to?: Array<{ group?: string; kind?: string; name?: string }>;
  };
}

/** A PVC's reference to a data source in another namespace. */
export interface CrossNamespaceReference {
  /** The PVC's namespace. */
  fromNamespace: string;
  /** The data source's namespace, where the grant must be. */
  namespace: string;
  apiGroup?: string;
  kind: string;
  name: string;
}

/**
 * Whether one of `grants` allows a PVC of `ref.fromNamespace` to use the data source (upstream
 * IsGranted): a grant in the source's namespace whose `from` lists core PersistentVolumeClaims
 * of the PVC's namespace and whose `to` lists the source's group and kind, with no name or
 * the source's name.
 */
export function isGranted(ref: CrossNamespaceReference, grants: ReferenceGrant[]): boolean {
  return grants.some(
    (grant) =>
      grant.metadata?.namespace === ref.namespace &&
      (grant.spec?.from ?? []).some(
        (from) =>
          !from.group &&
          from.kind === 'PersistentVolumeClaim' &&
          from.namespace === ref.fromNamespace,
      ) &&
      (grant.spec?.to ?? []).some(
        (to) =>
          (to.group ?? '') === (ref.apiGroup ?? '') &&
          to.kind === ref.kind &&
          (!to.name || to.name === ref.name),
      ),
  );
}
