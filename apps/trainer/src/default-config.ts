// Where the embedded default run's config lives (shipped with the app, next to its corpus).
import { fileURLToPath } from 'node:url';

export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../configs/default.yaml', import.meta.url));
