import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const MODELS_DIR = path.join(REPO_ROOT, 'models');
export const DATASETS_DIR = path.join(REPO_ROOT, 'datasets');
