/**
 * zod schema -> CustomResourceDefinition, as pure functions (tools/generate/crds.ts writes the
 * result to crds/).
 *
 * zod's OpenAPI 3.0 output is close to, but not, a structural schema as the API server
 * requires: strict objects carry `additionalProperties: false`, int-or-string unions carry
 * typed `anyOf` branches, `z.int()` adds ±2^53 bounds and `z.iso.datetime()` a long pattern.
 * `toStructuralSchema` rewrites those and refuses anything else it cannot express.
 */
import { z } from 'zod';
import { stringify } from 'yaml';
import {
  API_VERSION,
  BACKUP_POLICY_KIND,
  BACKUP_POLICY_PLURAL,
  BACKUP_POLICY_SHORT_NAME,
  BACKUP_POLICY_SINGULAR,
  BackupPolicySpecSchema,
  BackupPolicyStatusSchema,
  CATEGORY,
  GROUP,
  MAX_RUN_NOW_TOKEN_LENGTH,
  RESTORE_JOB_KIND,
  RESTORE_JOB_PLURAL,
  RESTORE_JOB_SHORT_NAME,
  RESTORE_JOB_SINGULAR,
  RestoreJobSpecSchema,
  RestoreJobStatusSchema,
  VERSION,
} from '../../src/api/v1alpha1.js';

/** The subset of OpenAPI v3 (with Kubernetes extensions) that a CRD schema uses. */
export interface JSONSchemaProps {
  description?: string;
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps;
  items?: JSONSchemaProps;
  required?: string[];
  [keyword: string]: unknown;
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Keywords the API server rejects in a structural schema, or that zod should never emit here. */
const FORBIDDEN = ['$ref', '$defs', 'definitions', 'oneOf', 'allOf', 'not', 'nullable', 'const'];

/** Key order in the output, for readable YAML; other keys keep zod's order after these. */
const KEY_ORDER = ['description', 'type', 'format', 'default', 'enum'];

function fail(path: string, problem: string): never {
  throw new Error(`cannot express ${path} in a structural CRD schema: ${problem}`);
}

function convert(node: Record<string, unknown>, path: string): JSONSchemaProps {
  for (const keyword of FORBIDDEN) {
    if (keyword in node) fail(path, `zod emitted "${keyword}"`);
  }
  const out: Record<string, unknown> = { ...node };
  delete out.$schema;

  if (out['x-kubernetes-int-or-string'] === true) {
    // The API server accepts an int-or-string node only without `type`; the branches'
    // constraints belong in CEL rules, which the schema carries next to this flag.
    delete out.anyOf;
    delete out.type;
  } else if ('anyOf' in out) {
    fail(path, 'a union other than int-or-string');
  }
  if (out.format === 'date-time') delete out.pattern;
  if (out.type === 'integer') {
    if (out.maximum === MAX_SAFE) delete out.maximum;
    if (out.minimum === -MAX_SAFE) delete out.minimum;
  }
  if (out.additionalProperties === false) {
    delete out.additionalProperties;
  } else if (out.additionalProperties !== undefined) {
    if (out.properties !== undefined) fail(path, 'both properties and additionalProperties');
    const value = out.additionalProperties as Record<string, unknown>;
    if (Object.keys(value).length === 0) fail(path, 'additionalProperties: {} (a loose object)');
    out.additionalProperties = convert(value, `${path}[*]`);
  }
  if (out.properties !== undefined) {
    const properties = out.properties as Record<string, Record<string, unknown>>;
    out.properties = Object.fromEntries(
      Object.entries(properties).map(([name, child]) => [name, convert(child, `${path}.${name}`)]),
    );
  }
  if (out.items !== undefined) {
    if (Array.isArray(out.items)) fail(path, 'tuple items');
    out.items = convert(out.items as Record<string, unknown>, `${path}[]`);
  }
  if (out.type === undefined && out['x-kubernetes-int-or-string'] !== true) {
    fail(path, 'no type');
  }
  if (out.required !== undefined && (out.required as string[]).length === 0) delete out.required;
  return ordered(out) as JSONSchemaProps;
}

function ordered(node: Record<string, unknown>): Record<string, unknown> {
  const first = KEY_ORDER.filter((key) => key in node).map((key) => [key, node[key]] as const);
  const rest = Object.entries(node).filter(([key]) => !KEY_ORDER.includes(key));
  return Object.fromEntries([...first, ...rest]);
}

/** The structural OpenAPI v3 schema of a zod schema (input side: defaults are optional). */
export function toStructuralSchema(schema: z.ZodType, path = 'self'): JSONSchemaProps {
  const generated = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'throw',
    cycles: 'throw',
    reused: 'inline',
  });
  return convert(generated as Record<string, unknown>, path);
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
}

const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since the object was created.',
};

export const BACKUP_POLICY_DEFINITION: KindDefinition = {
  kind: BACKUP_POLICY_KIND,
  plural: BACKUP_POLICY_PLURAL,
  singular: BACKUP_POLICY_SINGULAR,
  shortNames: [BACKUP_POLICY_SHORT_NAME],
  description: `BackupPolicy takes VolumeSnapshots of selected PVCs on a schedule (with consistency Group, one VolumeGroupSnapshot of them all per run) and prunes them by a retention policy. Snapshots carry the labels snapback.dev/policy and snapback.dev/pvc, groups snapback.dev/policy; annotate the policy with snapback.dev/run-now=<a value other than the last one acted on, at most ${MAX_RUN_NOW_TOKEN_LENGTH} characters> for an extra run now.`,
  spec: BackupPolicySpecSchema,
  status: BackupPolicyStatusSchema,
  printerColumns: [
    { name: 'Schedule', type: 'string', jsonPath: '.spec.schedule', description: 'The schedule.' },
    {
      name: 'Suspended',
      type: 'boolean',
      jsonPath: '.spec.suspend',
      description: 'Whether scheduling is suspended.',
    },
    {
      name: 'Last',
      type: 'date',
      jsonPath: '.status.lastScheduleTime',
      description: 'Time since the most recent scheduled run.',
    },
    {
      // A string, not a date: kubectl renders a future date as <invalid>.
      name: 'Next',
      type: 'string',
      jsonPath: '.status.nextScheduleTime',
      description: 'When the next scheduled run is due.',
    },
    {
      name: 'Ready/Total',
      type: 'string',
      jsonPath: '.status.readyOverTotal',
      description: 'Ready snapshots over all snapshots of the selected PVCs.',
    },
    {
      name: 'Consistency',
      type: 'string',
      jsonPath: '.spec.consistency',
      description:
        'Volume (one VolumeSnapshot per PVC) or Group (one VolumeGroupSnapshot per run).',
      priority: 1,
    },
    {
      name: 'Groups',
      type: 'string',
      jsonPath: '.status.readyOverTotalGroups',
      description: 'consistency Group: ready VolumeGroupSnapshots over all of the policy.',
    },
    {
      name: 'Members',
      type: 'string',
      jsonPath: '.status.lastGroup.readyOverTotal',
      description: 'consistency Group: ready members over all members of the newest group.',
      priority: 1,
    },
    AGE,
  ],
};

export const RESTORE_JOB_DEFINITION: KindDefinition = {
  kind: RESTORE_JOB_KIND,
  plural: RESTORE_JOB_PLURAL,
  singular: RESTORE_JOB_SINGULAR,
  shortNames: [RESTORE_JOB_SHORT_NAME],
  description:
    'RestoreJob restores a VolumeSnapshot into a new PVC and reports progress until the PVC is Bound, or (mode Swap) swaps the PVCs of a StatefulSet for restored volumes in place, keeping the old ones. Its spec cannot change; deleting it never deletes the restored PVC or any snapshot.',
  spec: RestoreJobSpecSchema,
  status: RestoreJobStatusSchema,
  printerColumns: [
    {
      name: 'Source',
      type: 'string',
      jsonPath: '.status.source',
      description: 'What is restored.',
    },
    {
      name: 'Target',
      type: 'string',
      jsonPath: '.status.target',
      description: 'The PVC the restore creates, or <pvc><suffix> for each member of a group.',
    },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'The restore phase.' },
    {
      name: 'Step',
      type: 'string',
      jsonPath: '.status.swap.step',
      description: 'Mode Swap: the step the swap is in.',
    },
    AGE,
  ],
};

export const KIND_DEFINITIONS: readonly KindDefinition[] = [
  BACKUP_POLICY_DEFINITION,
  RESTORE_JOB_DEFINITION,
];

/** The CustomResourceDefinition of one snapback.dev kind. */
export function customResourceDefinition(definition: KindDefinition): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${definition.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'snapback', 'app.kubernetes.io/part-of': 'snapback' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: definition.kind,
        listKind: `${definition.kind}List`,
        plural: definition.plural,
        singular: definition.singular,
        shortNames: definition.shortNames,
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: definition.printerColumns,
          schema: {
            openAPIV3Schema: {
              description: definition.description,
              type: 'object',
              properties: {
                apiVersion: {
                  description: `The versioned schema of this object: ${API_VERSION}.`,
                  type: 'string',
                },
                kind: {
                  description: `The kind of this object: ${definition.kind}.`,
                  type: 'string',
                },
                metadata: { type: 'object' },
                spec: toStructuralSchema(definition.spec, 'spec'),
                status: toStructuralSchema(definition.status, 'status'),
              },
              required: ['spec'],
            },
          },
        },
      ],
    },
  };
}

/** Where a kind's CRD lives under crds/, by the kubebuilder convention `<group>_<plural>`. */
export function crdFileName(definition: KindDefinition): string {
  return `${GROUP}_${definition.plural}.yaml`;
}

const HEADER = '# Generated by `make generate` from the zod schemas in src/api/. Do not edit.\n';

/** The generated CRD files: file name under crds/ -> YAML text. Deterministic. */
export function renderGeneratedCrds(): Map<string, string> {
  return new Map(
    KIND_DEFINITIONS.map((definition) => [
      crdFileName(definition),
      HEADER + stringify(customResourceDefinition(definition), { lineWidth: 0 }),
    ]),
  );
}
