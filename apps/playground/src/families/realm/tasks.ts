// The REALM tasks: what the panel sends to the worker and what comes back (plain data).

export interface AskInput {
  question: string;
}

export interface ShownBlock {
  /** Its row in block_emb / entry of the block records. */
  id: number;
  text: string;
  /** Relevance: question embedding . block embedding. */
  score: number;
  /** Whether it came with the model or from documents added in this page. */
  source: 'bundled' | 'added';
}

export interface AskResult {
  question: string;
  /** The answer, decoded from the reader's best span. */
  answer: string;
  /** The retrieved blocks, best score first (reader_beam_size of them). */
  blocks: ShownBlock[];
  /** The answer's block (index into blocks) and its character range in that block's text (null when the
   *  decoded wordpieces do not appear verbatim, e.g. an [UNK] in the span). */
  span: { block: number; charStart: number | null; charEnd: number | null };
  numBlocks: number;
  ms: number;
}

export interface AddDocumentsInput {
  documents: { title: string; text: string }[];
}

/** Emitted after each embedded batch while documents are indexed. */
export interface IndexProgressMessage {
  done: number;
  total: number;
}

export interface AddDocumentsResult {
  /** Blocks the documents were split into. */
  added: number;
  numBlocks: number;
  ms: number;
}
