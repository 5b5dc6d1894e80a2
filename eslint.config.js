// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/** Every layer and program under src/, for the leaves, which may import none of them. */
const PROGRAM_LAYERS = ['cli', 'router', 'api', 'lifecycle', 'runtime', 'store', 'worker'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'build/', 'data/', '.cache/', 'models/', 'datasets/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  // The layers: cli → router → api → lifecycle → runtime/store, nothing pointing back.
  // The worker is a program of its own and shares only the leaf modules (errors, ids…).
  layer('src/router.ts', ['cli']),
  layer('src/api/**/*.ts', ['cli', 'router']),
  layer('src/lifecycle/**/*.ts', ['cli', 'router', 'api']),
  layer('src/runtime/**/*.ts', ['cli', 'router', 'api', 'lifecycle', 'store']),
  layer('src/store/**/*.ts', ['cli', 'router', 'api', 'lifecycle', 'runtime']),
  layer('src/worker/**/*.ts', ['cli', 'router', 'api', 'lifecycle', 'runtime', 'store']),
  // Leaves several layers share, which therefore import none of them: the gRPC protocol
  // (router and worker), metrics (api and lifecycle; a store record's type is all it
  // reads) and chart rendering (api).
  leaf('src/inference-grpc/**/*.ts', [...PROGRAM_LAYERS, 'observability', 'charts']),
  leaf('src/observability/**/*.ts', [
    ...PROGRAM_LAYERS.filter((name) => name !== 'store'),
    'inference-grpc',
    'charts',
  ]),
  leaf('src/charts/**/*.ts', [...PROGRAM_LAYERS, 'inference-grpc', 'observability']),
  {
    // Tests read loosely typed JSON answers.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: globals.node },
  },
);

/** Files matching `files` may not import from the named layers above them. */
function layer(files, forbidden) {
  return restrictImports(
    files,
    forbidden,
    (name) => `${files} is below ${name} in the layers (cli → router → api → lifecycle → runtime/store)`,
  );
}

/** A leaf module group: it may not import from the named layers or other leaves. */
function leaf(files, forbidden) {
  return restrictImports(
    files,
    forbidden,
    (name) => `${files} is a leaf shared by several layers: it may not import ${name}`,
  );
}

function restrictImports(files, forbidden, message) {
  return {
    files: [files],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((name) => ({
            group: name === 'router' ? ['**/router.js'] : [`**/${name}/**`],
            message: message(name),
          })),
        },
      ],
    },
  };
}
