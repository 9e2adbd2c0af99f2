"""Several messages in one llama.cpp decode: shared prompt prefix, one sequence and one grammar per message.

One message at a time leaves most of the CPU idle: a decode of one token reads
every weight for one row of arithmetic, while a decode of eight tokens reads
them once for eight. Here each message is a sequence in the same context:

- the fixed prompt prefix is evaluated once, into sequence 0, and each message's
  sequence starts as a copy of it (`llama_memory_seq_cp`, which shares the KV
  cells rather than copying them);
- every step decodes, in a single `llama_decode`, each unfinished message's next
  token plus the output template's draft after it (jump-forward, draft.py): keys
  the grammar forces go in without logits, guesses are kept only where greedy
  decoding picks them, so a step often writes several tokens of a message;
- each message has its own grammar state (a clone of one compiled GBNF sampler);
- the greedy token is checked against the grammar alone first (a one-entry
  candidate array, as llama.cpp's own common sampler does), and the
  full-vocabulary grammar pass runs only when the grammar rejects it. Both give
  the grammar-masked argmax, so the output is what full masking would give.

A message's result does not depend on which other messages share its batch,
up to floating-point summation order in llama.cpp's kernels.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

from streamer.parsing.draft import Draft

# KV cells reserved for one message's own tokens and its answer when sizing the batch context;
# a message that needs more gets a decode group of its own.
CELLS_PER_MESSAGE = 256


@dataclass
class Generation:
    """What the model wrote for one message: bytes, each token's byte range and log-probability."""

    output: bytes = b""
    ranges: list[tuple[int, int]] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    evaluated: int = 0  # prompt tokens evaluated for this message (the prefix came from the KV cache)


class BatchDecoder:
    """Greedy grammar-constrained generation for up to `max_messages` messages per decode group."""

    def __init__(self, llm, prefix: list[int], gbnf: str, max_messages: int, n_threads: int | None,
                 max_tokens: int, n_ctx_per_message: int, max_draft: int = 16):
        import llama_cpp.llama_cpp as native
        from llama_cpp import _internals

        self._native = native
        self.llm = llm
        self.prefix = list(prefix)
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self.max_draft = max_draft
        self._draft = Draft()
        self._draft_ids: dict[str, list[int]] = {}
        self.n_ctx_per_message = n_ctx_per_message  # the single-message limit (settings.n_ctx)
        self.capacity = len(self.prefix) + max(max_messages * CELLS_PER_MESSAGE, n_ctx_per_message)
        params = native.llama_context_default_params()
        params.n_ctx = self.capacity
        params.n_batch = self.capacity  # a whole group in one llama_decode, which splits it into ubatches itself
        params.n_ubatch = min(512, self.capacity)
        params.n_seq_max = max_messages + 1  # sequence 0 holds the prefix
        params.kv_unified = True  # the sequences share the prefix's cells
        threads = n_threads or llm.n_threads
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self._context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._ctx = self._context.ctx
        if llm._lora_adapter is not None:  # the runtime adapter, on this context too
            adapters = (native.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if native.llama_set_adapters_lora(self._ctx, adapters, 1, scales):
                raise RuntimeError("llama.cpp could not apply the LoRA adapter to the batch context")
        self._memory = native.llama_get_memory(self._ctx)
        self._batch = native.llama_batch_init(self.capacity, 0, 1)
        self._grammar = native.llama_sampler_init_grammar(llm._model.vocab, gbnf.encode(), b"root")
        if not self._grammar:
            raise ValueError("llama.cpp could not compile the output grammar")
        self._n_vocab = llm.n_vocab()
        self._eos = llm.token_eos()
        self._one = (native.llama_token_data * 1)()
        self._one_array = native.llama_token_data_array(self._one, 1, -1, False)
        self._all = (native.llama_token_data * self._n_vocab)()
        record = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        self._all_view = np.frombuffer(self._all, dtype=record)
        self._all_view["id"] = np.arange(self._n_vocab, dtype=np.int32)
        self._all_array = native.llama_token_data_array(self._all, self._n_vocab, -1, False)
        self.full_grammar_passes = 0
        self.checked_tokens = 0
        self.drafted_tokens = 0  # template guesses the model confirmed
        self.forced_tokens = 0  # template tokens the grammar forces, taken without logits
        self.rejected_draft_tokens = 0  # evaluated, then dropped at the first miss
        self._decode([(0, position, token, position == len(self.prefix) - 1)
                      for position, token in enumerate(self.prefix)])

    def close(self) -> None:
        native = self._native
        if self._grammar:
            native.llama_sampler_free(self._grammar)
            self._grammar = None
        if self._batch is not None:
            native.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()

    def groups(self, bodies: list[list[int]]) -> list[list[int]]:
        """Indices of `bodies` in decode groups: at most `max_messages`, their KV cells within the context."""
        groups, current, used = [], [], len(self.prefix)
        for index, body in enumerate(bodies):
            need = len(body) + self.max_tokens
            if current and (len(current) == self.max_messages or used + need > self.capacity):
                groups.append(current)
                current, used = [], len(self.prefix)
            current.append(index)
            used += need
        if current:
            groups.append(current)
        return groups

    def generate(self, bodies: list[list[int]]) -> list[Generation]:
        """One `Generation` per body (message tokens + prompt suffix), in order."""
        results: list[Generation] = [Generation() for _ in bodies]
        for group in self.groups(bodies):
            for index, generation in zip(group, self._generate_group([bodies[i] for i in group])):
                results[index] = generation
        return results

    # -- internals ----------------------------------------------------------------

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """Evaluate (sequence, position, token, wants logits) items in one llama_decode."""
        native, batch = self._native, self._batch
        if len(items) > self.capacity:
            raise ValueError(f"{len(items)} tokens in one decode, more than the context's {self.capacity}")
        batch.n_tokens = len(items)
        for j, (seq, position, token, logits) in enumerate(items):
            batch.token[j] = token
            batch.pos[j] = position
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = seq
            batch.logits[j] = logits
        status = native.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _logits(self, index: int) -> np.ndarray:
        return np.ctypeslib.as_array(self._native.llama_get_logits_ith(self._ctx, index), shape=(self._n_vocab,))

    def _choose(self, grammar, logits: np.ndarray) -> int:
        """The grammar-masked argmax: the plain argmax when the grammar allows it, else a full masked pass."""
        native = self._native
        token = int(np.argmax(logits))
        self.checked_tokens += 1
        if self._allowed(grammar, token):
            return token
        self.full_grammar_passes += 1
        self._all_view["logit"] = logits
        self._all_array.size, self._all_array.selected, self._all_array.sorted = self._n_vocab, -1, False
        native.llama_sampler_apply(grammar, ctypes.byref(self._all_array))
        return int(np.argmax(self._all_view["logit"]))

    def _draft_tokens(self, output: bytearray, budget: int) -> tuple[list[int], list[bool]]:
        """Up to `budget` tokens of the template's guess at how `output` goes on (see draft.py), and for each
        whether the model must confirm it (a guess) or the grammar forces it."""
        if budget <= 0:
            return [], []
        guess = self._draft.guess(output.decode(errors="replace"))
        if not guess.text:
            return [], []
        known = self._draft_ids.get(guess)
        if known is None:
            tokens = self.llm.tokenize(guess.text.encode(), add_bos=False, special=False)
            checked, start = [], 0
            for token in tokens:
                checked.append(start < guess.checked)  # a token that starts inside the guess is checked
                start += len(self.llm.detokenize([token]))
            known = self._draft_ids[guess] = (tokens, checked)
        return known[0][:budget], known[1][:budget]

    def _allowed(self, grammar, token: int) -> bool:
        """Does the grammar accept `token` next (a one-entry candidate array)?"""
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._native.llama_sampler_apply(grammar, ctypes.byref(self._one_array))
        return bool(np.isfinite(self._one[0].logit))

    def _emit(self, grammar, generation: Generation, output: bytearray, token: int, logprob: float) -> bool:
        """Record a chosen or forced token (grammar state, bytes, log-probability); True when the message is finished."""
        if token == self._eos:
            return True
        self._native.llama_sampler_accept(grammar, token)
        generation.logprobs.append(logprob)
        piece = self.llm.detokenize([token])
        generation.ranges.append((len(output), len(output) + len(piece)))
        output += piece
        # spans cannot contain braces: the first one closes the object
        return b"}" in piece or len(generation.ranges) >= self.max_tokens

    @staticmethod
    def _logprob(logits: np.ndarray, token: int) -> float:
        top = float(logits.max())
        return float(logits[token]) - top - float(np.log(np.exp(logits - top).sum()))

    def _generate_group(self, bodies: list[list[int]]) -> list[Generation]:
        """Greedy decoding of one group, several tokens per message per step.

        Each step evaluates, per unfinished message, its pending token (chosen or
        forced last step, not yet in the KV cache) and the template draft after it.
        Walking the draft: a forced token is taken as it is (log-probability 0, no
        logits computed for it); a guessed one is kept only if it is what greedy,
        grammar-constrained decoding picks from the previous position's logits;
        the first pick that differs, or the pick after the whole draft, is the next
        pending token. KV cells of the draft past a miss are dropped.
        """
        native = self._native
        start = len(self.prefix)
        items, first_logits, positions = [], {}, {}
        for i, body in enumerate(bodies):
            seq = i + 1
            native.llama_memory_seq_rm(self._memory, seq, -1, -1)
            native.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
            items += [(seq, start + k, token, k == len(body) - 1) for k, token in enumerate(body)]
            first_logits[i] = len(items) - 1
            positions[i] = start + len(body)  # where the pending token goes
        self._decode(items)
        generations = [Generation(evaluated=len(body)) for body in bodies]
        grammars = [native.llama_sampler_clone(self._grammar) for _ in bodies]
        outputs = [bytearray() for _ in bodies]
        pending: dict[int, int] = {}
        no_draft: set[int] = set()
        try:
            for i in range(len(bodies)):
                logits = self._logits(first_logits[i])
                token = self._choose(grammars[i], logits)
                if not self._emit(grammars[i], generations[i], outputs[i], token, self._logprob(logits, token)):
                    pending[i] = token
            while pending:
                items, drafts = [], {}
                for i, token in pending.items():
                    budget = 0 if i in no_draft else min(self.max_draft, self.max_tokens - len(generations[i].ranges))
                    draft, checked = self._draft_tokens(outputs[i], budget)
                    no_draft.discard(i)
                    drafts[i] = (len(items), draft, checked)
                    # position k's logits pick the token after it: needed to check draft[k], and after the last
                    wants = [*checked, True]
                    items += [(i + 1, positions[i] + k, t, wants[k]) for k, t in enumerate([token, *draft])]
                self._decode(items)
                chosen = {}
                for i, (first, draft, checked) in drafts.items():
                    grammar, generation, output = grammars[i], generations[i], outputs[i]
                    kept, finished, redo = 0, False, None
                    while True:
                        if kept < len(draft) and not checked[kept]:
                            token = draft[kept]
                            if not self._allowed(grammar, token):  # a draft the grammar refuses: ask the model
                                redo = kept
                                break
                            self.forced_tokens += 1
                            finished = self._emit(grammar, generation, output, token, 0.0)
                            kept += 1
                            if finished:
                                break
                            continue
                        logits = self._logits(first + kept)
                        token = self._choose(grammar, logits)
                        finished = self._emit(grammar, generation, output, token, self._logprob(logits, token))
                        if finished or kept == len(draft) or token != draft[kept]:
                            break
                        self.drafted_tokens += 1
                        kept += 1
                    if redo is not None:  # the token before the refused one goes again, with its logits
                        self.rejected_draft_tokens += len(draft) - redo
                        positions[i] += redo
                        native.llama_memory_seq_rm(self._memory, i + 1, positions[i], -1)
                        chosen[i] = pending[i] if redo == 0 else draft[redo - 1]
                        no_draft.add(i)
                        continue
                    self.rejected_draft_tokens += len(draft) - kept
                    positions[i] += 1 + kept
                    if kept < len(draft):  # the KV cells of the draft past the first miss
                        native.llama_memory_seq_rm(self._memory, i + 1, positions[i], -1)
                    if not finished:
                        chosen[i] = token
                pending = chosen
        finally:
            for grammar in grammars:
                native.llama_sampler_free(grammar)
            for i in range(len(bodies)):
                native.llama_memory_seq_rm(self._memory, i + 1, -1, -1)
        for generation, output in zip(generations, outputs):
            generation.output = bytes(output)
        return generations
