import { z } from 'zod';
import { ecsActions, type EcsAction } from './ecs.js';
import { defaultSnapshotGroupLimits } from './parameters.js';

/**
 * The alicloud backend's settings, from `snapback driver` flags with the environment
 * variables the upstream ACK driver reads as fallbacks. Validated once at start-up, so a
 * missing region or a malformed endpoint stops the driver with one clear message instead of
 * failing on the first CSI call.
 */

export const credentialSources = ['default', 'env', 'secret-dir'] as const;

const rateLimitsSchema = z.string().transform((value, ctx) => {
  const limits: Partial<Record<EcsAction, number>> = {};
  for (const entry of value.split(',').filter(Boolean)) {
    const [action, rate] = entry.split('=');
    const perSecond = Number(rate);
    if (!(ecsActions as readonly string[]).includes(action ?? '') || !(perSecond > 0)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry}" is not <Action>=<requests per second> with Action one of ${ecsActions.join(', ')}`,
      });
      return z.NEVER;
    }
    limits[action as EcsAction] = perSecond;
  }
  return limits;
});

const wholePositive = (error: string) =>
  z.coerce.number({ error }).int({ error }).positive({ error });

export const alicloudConfigSchema = z.object({
  region: z
    .string({ error: 'the ECS region is required (--region, e.g. cn-hangzhou)' })
    .regex(/^[a-z]{2,}(-[a-z0-9]+)+$/, 'the region must look like cn-hangzhou'),
  zone: z
    .string({ error: 'the default zone is required (--zone, e.g. cn-hangzhou-h)' })
    .regex(/^[a-z]{2,}(-[a-z0-9]+)+$/, 'the zone must look like cn-hangzhou-h'),
  ecsEndpoint: z
    .string()
    .regex(
      /^[A-Za-z0-9.-]+(:\d{1,5})?$/,
      'the ECS endpoint is host[:port], without a scheme (set the scheme with --ecs-protocol)',
    )
    .optional(),
  ecsProtocol: z
    .enum(['https', 'http'], { error: '--ecs-protocol must be https or http' })
    .default('https'),
  ecsNetwork: z
    .enum(['public', 'vpc'], { error: '--ecs-network must be public or vpc' })
    .default('public'),
  clusterId: z.string().min(1).optional(),
  credentials: z.discriminatedUnion(
    'source',
    [
      z.object({ source: z.literal('default') }),
      z.object({ source: z.literal('env') }),
      z.object({
        source: z.literal('secret-dir'),
        dir: z.string({ error: '--credentials=secret-dir needs --credentials-dir' }).min(1),
      }),
    ],
    { error: `--credentials must be one of ${credentialSources.join(', ')}` },
  ),
  requestTimeoutMs: z.coerce.number().int().positive().default(10_000),
  rateLimits: rateLimitsSchema.default({}),
  groupSnapshotLimits: z.object({
    maxDisks: wholePositive(
      '--group-snapshot-max-disks must be a whole number of disks above 0',
    ).default(defaultSnapshotGroupLimits.maxDisks),
    maxTotalGiB: wholePositive(
      '--group-snapshot-max-gib must be a whole number of GiB above 0',
    ).default(defaultSnapshotGroupLimits.maxTotalGiB),
  }),
});

export type AlicloudConfig = z.infer<typeof alicloudConfigSchema>;

/** Builds and validates the config; the error message lists every problem at once. */
export function parseAlicloudConfig(
  flags: Readonly<Record<string, string>>,
  env: NodeJS.ProcessEnv,
): AlicloudConfig {
  const dir = flags['credentials-dir'];
  const source = flags.credentials ?? (dir ? 'secret-dir' : 'default');
  const raw = {
    region: flags.region,
    zone: flags.zone,
    ecsEndpoint: flags['ecs-endpoint'] ?? (env.ECS_ENDPOINT || undefined),
    ecsProtocol: flags['ecs-protocol'] ?? (env.ALICLOUD_CLIENT_SCHEME?.toLowerCase() || undefined),
    ecsNetwork: flags['ecs-network'] ?? (env.ALIBABA_CLOUD_NETWORK_TYPE || undefined),
    clusterId: flags['cluster-id'] ?? (env.CLUSTER_ID || undefined),
    credentials: source === 'secret-dir' ? { source, dir } : { source },
    requestTimeoutMs: flags['ecs-timeout-ms'],
    rateLimits: flags['ecs-rate-limits'],
    groupSnapshotLimits: {
      maxDisks: flags['group-snapshot-max-disks'],
      maxTotalGiB: flags['group-snapshot-max-gib'],
    },
  };
  const parsed = alicloudConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`alicloud backend configuration is invalid:\n${z.prettifyError(parsed.error)}`);
  }
  if (parsed.data.credentials.source === 'env') {
    const missing = ['ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET'].filter(
      (name) => !env[name],
    );
    if (missing.length > 0) {
      throw new Error(
        `alicloud backend configuration is invalid: --credentials=env needs ${missing.join(' and ')} in the environment`,
      );
    }
  }
  return parsed.data;
}
