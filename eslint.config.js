import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (docs/architecture.md, "Source layout"): a folder may import the folders
 * below it, never those beside or above it. cli/ wires everything; nothing imports it.
 */
const forbidden = {
  util: [
    'observability',
    'api',
    'kube',
    'csi',
    'driver',
    'snapshot',
    'provisioner',
    'policy',
    'cli',
  ],
  observability: ['api', 'kube', 'csi', 'driver', 'snapshot', 'provisioner', 'policy', 'cli'],
  api: ['kube', 'csi', 'driver', 'snapshot', 'provisioner', 'policy', 'cli'],
  kube: ['csi', 'driver', 'snapshot', 'provisioner', 'policy', 'cli'],
  csi: ['kube', 'driver', 'snapshot', 'provisioner', 'policy', 'cli'],
  // the node plugin does not load the Kubernetes client
  driver: ['kube', 'snapshot', 'provisioner', 'policy', 'cli'],
  snapshot: ['driver', 'provisioner', 'policy', 'cli'],
  provisioner: ['driver', 'snapshot', 'policy', 'cli'],
  policy: ['csi', 'driver', 'snapshot', 'provisioner', 'cli'],
};

/** What ships never loads the tests' fakes, fixtures or harness, nor the generators. */
const shippedOnly = {
  group: ['**/test/**', '**/bench/**', '**/tools/**'],
  message: 'src/ is the shipped code: test, bench and generator code stays out of it',
};

export default tseslint.config(
  { ignores: ['dist/**', 'coverage/**', 'node_modules/**', '.cache/**', 'src/gen/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [shippedOnly] }] },
  },
  ...Object.entries(forbidden).map(([layer, above]) => ({
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            shippedOnly,
            ...above.map((folder) => ({
              group: [`**/${folder}/**`],
              message: `src/${layer}/ must not import src/${folder}/ (see the layers in docs/architecture.md)`,
            })),
          ],
        },
      ],
    },
  })),
);
