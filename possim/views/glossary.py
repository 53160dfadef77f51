# ruff: noqa: RUF001 - Chinese text uses full-width punctuation
"""The glossary: payment terms in English and Chinese, in one place.

``possim glossary [--lang zh|en]`` prints it and ``docs/glossary.md`` carries the same table
(``markdown()``; a test checks the two agree), so the words trainers look up are the words
the views print.
"""

from __future__ import annotations

from typing import NamedTuple


class Term(NamedTuple):
    english: str
    chinese: str
    meaning: str  # in English
    meaning_zh: str


TERMS: tuple[Term, ...] = (
    Term("orphaned debit", "单边账", "The bank took the money, the terminal says the sale failed.",
         "银行已扣款，终端却显示交易失败。"),
    Term("reversal (0400, repeat 0401)", "冲正", "The terminal asks the bank to undo a sale whose answer it never got.",
         "终端请求银行撤回一笔没有收到应答的交易。"),
    Term("status query (0600)", "查询", "The terminal asks the bank what became of a sale.",
         "终端向银行询问一笔交易的结果。"),
    Term("cancel / void", "撤销", "The merchant undoes a sale the same day.", "商户当天撤回一笔交易。"),
    Term("refund", "退款", "Money given back after settlement.", "结算之后退还的款项。"),
    Term("reconciliation", "对账", "Comparing the terminal's batch with the bank's settlement.",
         "把终端的批次与银行的结算逐笔核对。"),
    Term("settlement", "结算", "What the acquirer pays the merchant for a day's sales, less fees: T+1, the next day.",
         "收单机构为一天的交易付给商户的款项（扣除手续费）：T+1，次日入账。"),
    Term("error handling", "差错处理",
         "The acquirer's process that corrects an orphaned debit or a double charge.",
         "收单机构纠正单边账或重复扣款的流程。"),
    Term("escalated reversal", "冲正不成功，转差错处理",
         "A CUP terminal tried the reversal three times, then told the merchant to contact the acquirer.",
         "银联终端冲正三次仍失败，提示商户联系收单机构，由差错处理退款。"),
    Term("timeout", "交易超时", "No answer in time: the terminal gives up.", "规定时间内没有应答：终端放弃等待。"),
    Term("terminal", "终端", "The POS device at the counter.", "收银台上的 POS 机。"),
    Term("acquirer", "收单机构", "The merchant's bank, which runs the host.", "商户的银行，运行主机。"),
    Term("issuer", "发卡行", "The cardholder's bank.", "持卡人的银行。"),
    Term("cardholder", "持卡人", "The customer who pays by card.", "用银行卡付款的顾客。"),
    Term("purchase (0200)", "消费", "A sale.", "一笔销售。"),
    Term("pre-authorization (0100)", "预授权", "A hold on the card, completed later.", "在卡上冻结资金，之后再完成。"),
    Term("completion advice (0220)", "预授权完成通知", "Turns the hold into a payment.", "把冻结转为实际付款。"),
    Term("phantom approval", "虚假成功", "The terminal says APPROVED, the bank holds no money.",
         "终端显示成功，银行却没有收到钱。"),
    Term("double debit", "重复扣款", "One basket charged twice.", "同一篮商品被扣了两次款。"),
    Term("RRN (retrieval reference number)", "参考号", "What the acquirer searches by.", "收单机构查询交易用的编号。"),
    Term("STAN (trace number)", "流水号", "The terminal's number for a message.", "终端给每条报文的编号。"),
    Term("voucher number", "凭证号", "The sale's trace number (its STAN) as the slip prints it.",
         "签购单上打印的交易流水号（即 STAN）。"),
    Term("batch number", "批次号", "The terminal's settlement batch the sale belongs to (CUP field 60.2).",
         "这笔交易所属的终端结算批次（银联 60.2 域）。"),
    Term("terminal id", "终端号", "Which terminal: tell the acquirer.", "哪一台终端：联系收单机构时要报。"),
    Term("slip", "签购单", "The printed receipt.", "打印出来的交易凭条。"),
    Term("bank statement", "对账单", "What the bank says was charged (T+1: the next day).",
         "银行列出的已扣款交易（T+1：次日出具）。"),
    Term("merchant discount fee", "手续费", "What the acquirer keeps of each settled payment.",
         "收单机构从每笔结算交易中收取的费用。"),
    Term("MAC (message authentication code)", "MAC（报文鉴别码）",
         "A checksum under a key only the terminal and the host share: a forged message fails it.",
         "用终端和主机共享的密钥计算的校验码：伪造的报文无法通过。"),
    Term("security violation (63)", "安全违规（63）", "The host's answer to a missing or wrong MAC.",
         "MAC 缺失或错误时主机的应答。"),
    Term("format error (30)", "格式错误（30）", "The host's answer to a request that fails the field checks.",
         "请求未通过字段检查时主机的应答。"),
    Term("payment code (QR)", "付款码", "The code on the customer's phone that the cashier scans.",
         "顾客手机上由收银员扫描的条码。"),
    Term("wallet", "钱包", "The customer's Alipay or WeChat Pay balance.", "顾客的支付宝或微信支付余额。"),
    Term("user paying", "支付中（用户输密码）", "The wallet waits for the customer to confirm on the phone.",
         "钱包在等顾客在手机上确认。"),
    Term("merchant order number", "商户订单号", "The wallet payment's key: a query, cancel or retry reuses it.",
         "扫码支付的唯一编号：查询、撤销和重试都沿用它。"),
)


def rows(lang: str) -> list[tuple[str, str, str]]:
    """(English, 中文, meaning in ``lang``) for each term."""
    return [(t.english, t.chinese, t.meaning_zh if lang == "zh" else t.meaning) for t in TERMS]


def markdown() -> str:
    """The table ``docs/glossary.md`` carries: both languages' terms, the meaning in English."""
    lines = ["| English | 中文 | What it means here |", "|---|---|---|"]
    lines += [f"| {t.english} | {t.chinese} | {t.meaning} |" for t in TERMS]
    return "\n".join(lines) + "\n"
