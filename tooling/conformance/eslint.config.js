export { default } from '@lm/eslint-config';
