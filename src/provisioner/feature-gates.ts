/**
 * `--feature-gates`, spelled as upstream's sidecars spell it: `Name=true,Other=false`.
 * Only the provisioner's gates are known; a gate not listed keeps its default.
 */
export const FEATURE_GATES = {
  /** Alpha upstream: provision from a data source in another namespace a ReferenceGrant allows. */
  CrossNamespaceVolumeDataSource: false,
} as const;

export type FeatureGates = Record<keyof typeof FEATURE_GATES, boolean>;

export function parseFeatureGates(value: string | undefined): FeatureGates {
  const gates: FeatureGates = { ...FEATURE_GATES };
  const known = Object.keys(FEATURE_GATES);
  for (const item of (value ?? '').split(',').map((part) => part.trim())) {
    if (!item) continue;
    const match = /^([A-Za-z0-9]+)=(true|false)$/.exec(item);
    if (!match) {
      throw new Error(
        `--feature-gates takes Name=true|false pairs separated by commas (got "${item}")`,
      );
    }
    const [, name, on] = match;
    if (!known.includes(name!)) {
      throw new Error(`--feature-gates: unknown feature gate ${name} (known: ${known.join(', ')})`);
    }
    gates[name as keyof FeatureGates] = on === 'true';
  }
  return gates;
}
