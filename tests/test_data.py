import numpy as np
import pytest

from antlm.config import build_config
from antlm.data.corpus import CorpusError, check_budget, find_corpus, iter_documents
from antlm.data.tokenizer import MIN_VOCAB, SPECIAL_TOKENS, TokenizerError, load_tokenizer, train_tokenizer
from antlm.data.tokens import BlockDataset, build_store, split_dev
from antlm.train.setup import prepare_data
from conftest import SHARED_DATA, tiny_overrides


def test_layout_and_word_count(text_corpus):
    (text_corpus / "held.test").write_text("never read for training\n")
    corpus = find_corpus(text_corpus)
    assert [p.name for p in corpus.train_files] == ["a.train", "b.txt"]
    assert [p.name for p in corpus.dev_files] == ["c.dev"] and [p.name for p in corpus.test_files] == ["held.test"]
    words = check_budget(corpus, None)
    assert words == sum(len(p.read_text().split()) for p in corpus.train_files)
    with pytest.raises(CorpusError, match="over data.word_budget"):
        check_budget(corpus, words - 1)


def test_bad_corpora(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        find_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no training files"):
        find_corpus(tmp_path / "empty")
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "a.train").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        find_corpus(tmp_path / "zero")


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    (tmp_path / "a.train").write_bytes(b"hello world\nbad \xff byte\n")
    with pytest.raises(CorpusError, match=r"a\.train: invalid UTF-8 at byte offset 16"):
        list(iter_documents(find_corpus(tmp_path).train_files))


def test_bom_and_crlf_are_accepted(tmp_path):
    (tmp_path / "a.train").write_bytes("\ufeffone two\r\n\r\nthree\r\n".encode())
    assert list(iter_documents(find_corpus(tmp_path).train_files)) == ["one two", "three"]


def test_tokenizer_special_tokens_and_minimum(text_corpus, tmp_path):
    tok = train_tokenizer(iter_documents(find_corpus(text_corpus).train_files), 300)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tok.decode(tok.encode("the dog runs .").ids).strip() == "the dog runs ."
    with pytest.raises(TokenizerError, match="too small"):
        train_tokenizer([], MIN_VOCAB - 1)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TokenizerError, match="not a valid tokenizer"):
        load_tokenizer(tmp_path / "bad.json")


def test_store_is_cached_and_uint16(text_corpus, tmp_path):
    corpus = find_corpus(text_corpus)
    tok = train_tokenizer(iter_documents(corpus.train_files), 300)
    messages = []
    first = build_store(corpus, tok, tmp_path, messages.append)
    second = build_store(corpus, tok, tmp_path, messages.append)
    assert len(messages) == 1 and first.directory == second.directory
    assert first.train.dtype == np.uint16 and isinstance(first.train, np.memmap)
    eos = tok.token_to_id("</s>")
    assert (np.asarray(first.train) == eos).sum() == 1000  # one </s> per training line
    (text_corpus / "a.train").write_text("changed text .\n")
    assert build_store(find_corpus(text_corpus), tok, tmp_path, messages.append).directory != first.directory


def test_blocks_start_with_bos_and_shift_targets():
    stream = np.arange(10, 50, dtype=np.uint16)
    ds = BlockDataset(stream, 8, bos_id=1)
    inputs, targets = ds.blocks(np.array([0, 2]))
    assert inputs[0].tolist() == [1] + list(range(10, 17)) and targets[0].tolist() == list(range(10, 18))
    assert targets[1][0] == 26
    assert sorted(ds.order(0, 1).tolist()) == list(range(5)) and not np.array_equal(ds.order(0, 1), ds.order(0, 2))


def test_dev_split_is_disjoint():
    train, dev = split_dev(1000, 0.01)
    assert len(dev) == 10 and not set(train) & set(dev)


def test_prepare_uses_dev_files(text_corpus):
    data = prepare_data(build_config(None, tiny_overrides(text_corpus)), None, lambda m: None)
    assert data.store.dev is not None and len(data.dev) > 0 and data.dev.stream is data.store.dev


@pytest.mark.skipif(not (SHARED_DATA / "babylm_10M").is_dir(), reason="shared data not found at ../shared/data")
def test_real_switchboard_file_reads(tmp_path):
    corpus = find_corpus(SHARED_DATA / "babylm_10M")
    assert check_budget(corpus, 10_000_000) == 146_789
