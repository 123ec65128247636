// A small rule set: mistakes the compiler lets through, and the layering rule no import shows
// (nothing above src/tensor calls a backend kernel; Tensor's methods and ops do).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'runs/'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      ...js.configs.recommended.rules,
      'no-undef': 'off', // the compiler checks names, with Node's globals
      'no-unused-vars': 'off',
      'no-redeclare': 'off', // overloads; the compiler checks redeclarations
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'smart'],
      'prefer-const': 'error',
      'no-var': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/tensor/**'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.object.property.name='backend']",
        message: 'backend kernels are for src/tensor; use a Tensor method or an op',
      }],
    },
  },
);
