/**
 * The alicloud backend's flags with their help text: all that `snapback driver` and
 * `all-in-one` need of this backend before it is chosen. It imports nothing, so listing the
 * backends loads neither the ECS SDK nor the rest of the backend (registry.ts imports the
 * backend itself only when --backend=alicloud is chosen). Flag name (without dashes) -> help.
 */
export const alicloudFlags = {
  region: 'ECS region id, e.g. cn-hangzhou (required)',
  zone: 'zone for new disks when the request names none, e.g. cn-hangzhou-h (required)',
  'ecs-endpoint':
    'ECS endpoint host[:port] (default: the SDK endpoint for the region; env ECS_ENDPOINT)',
  'ecs-protocol': 'https or http (default https; env ALICLOUD_CLIENT_SCHEME)',
  'ecs-network': 'public or vpc endpoints (default public; env ALIBABA_CLOUD_NETWORK_TYPE)',
  'cluster-id': 'cluster id recorded in the ack.aliyun.com tag (env CLUSTER_ID)',
  credentials:
    'default (RRSA/OIDC, then env access keys, then the ECS RAM role), env (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET), or secret-dir',
  'credentials-dir':
    'directory of a mounted Secret holding access-key-id, access-key-secret and optionally security-token',
  'ecs-timeout-ms': 'timeout of one ECS request in milliseconds (default 10000)',
  'ecs-rate-limits': 'requests per second per ECS API, e.g. CreateSnapshot=10,DescribeSnapshots=20',
  'group-snapshot-max-disks':
    'most disks one ECS snapshot-consistent group may hold (default 16, as in most regions)',
  'group-snapshot-max-gib':
    'most GiB, all disks together, one ECS snapshot-consistent group may hold (default 32768)',
} as const;
