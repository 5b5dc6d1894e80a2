// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

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
  return {
    files: [files],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((name) => ({
            group: name === 'router' ? ['**/router.js'] : [`**/${name}/**`],
            message: `${files} is below ${name} in the layers (cli → router → api → lifecycle → runtime/store)`,
          })),
        },
      ],
    },
  };
}
