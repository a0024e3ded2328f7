/**
 * The `csi.storage.k8s.io/` keys of StorageClass and VolumeSnapshotClass parameters: what the
 * CSI sidecars read (the Secrets they pass to the driver, the file system type) and the
 * metadata they add for the driver (the PVC, PV and VolumeSnapshot names). Keys with this
 * prefix are for the sidecars and never reach the driver as the class's own parameters.
 */
export const CSI_PARAMETER_PREFIX = 'csi.storage.k8s.io/';

export const PARAM_SNAPSHOTTER_SECRET_NAME = `${CSI_PARAMETER_PREFIX}snapshotter-secret-name`;
export const PARAM_SNAPSHOTTER_SECRET_NAMESPACE = `${CSI_PARAMETER_PREFIX}snapshotter-secret-namespace`;
export const PARAM_SNAPSHOTTER_LIST_SECRET_NAME = `${CSI_PARAMETER_PREFIX}snapshotter-list-secret-name`;
export const PARAM_SNAPSHOTTER_LIST_SECRET_NAMESPACE = `${CSI_PARAMETER_PREFIX}snapshotter-list-secret-namespace`;
export const PARAM_FSTYPE = `${CSI_PARAMETER_PREFIX}fstype`;

/** Added by csi-snapshotter with --extra-create-metadata. */
export const PARAM_VOLUME_SNAPSHOT_NAME = `${CSI_PARAMETER_PREFIX}volumesnapshot/name`;
export const PARAM_VOLUME_SNAPSHOT_NAMESPACE = `${CSI_PARAMETER_PREFIX}volumesnapshot/namespace`;
export const PARAM_VOLUME_SNAPSHOT_CONTENT_NAME = `${CSI_PARAMETER_PREFIX}volumesnapshotcontent/name`;

/** Added by external-provisioner with --extra-create-metadata. */
export const PARAM_PVC_NAME = `${CSI_PARAMETER_PREFIX}pvc/name`;
export const PARAM_PVC_NAMESPACE = `${CSI_PARAMETER_PREFIX}pvc/namespace`;
export const PARAM_PV_NAME = `${CSI_PARAMETER_PREFIX}pv/name`;
