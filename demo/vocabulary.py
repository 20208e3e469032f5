"""Words and sentence templates of the demo corpus in the eight demo languages.

Every caption describes one synthetic image: `count` shapes of one `colour` and one `shape`, grouped on
one `side`. Each language has two caption templates (so evaluation items have two references, as
XM3600 items have several), four question templates and an instruction that asks for a caption.
"""
from __future__ import annotations

# The demo speaks every default language; its caption requests use the project's own caption instructions.
from components.common.languages import CAPTION_PROMPTS, LANGUAGES  # noqa: F401 (re-exported for corpus.py)

LANG_NAMES = {
    "en": "English", "id": "Indonesian", "ms": "Malay", "th": "Thai",
    "vi": "Vietnamese", "tl": "Tagalog", "zh": "Chinese", "ta": "Tamil",
}
COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
COUNTS = (1, 2, 3)
SIDES = ("left", "right")
ATTRIBUTES = ("colour", "shape", "count", "side")
VALUES = {"colour": COLOURS, "shape": SHAPES, "count": COUNTS, "side": SIDES}

# What each attribute is called in each language (answers, options, caption slots).
WORDS: dict[str, dict[str, dict]] = {
    "en": {"colour": dict(red="red", green="green", blue="blue", yellow="yellow"),
           "shape": dict(circle="circle", square="square", triangle="triangle"),
           "count": {1: "one", 2: "two", 3: "three"}, "side": dict(left="left", right="right")},
    "id": {"colour": dict(red="merah", green="hijau", blue="biru", yellow="kuning"),
           "shape": dict(circle="lingkaran", square="persegi", triangle="segitiga"),
           "count": {1: "satu", 2: "dua", 3: "tiga"}, "side": dict(left="kiri", right="kanan")},
    "ms": {"colour": dict(red="merah", green="hijau", blue="biru", yellow="kuning"),
           "shape": dict(circle="bulatan", square="segi empat", triangle="segi tiga"),
           "count": {1: "satu", 2: "dua", 3: "tiga"}, "side": dict(left="kiri", right="kanan")},
    "th": {"colour": dict(red="สีแดง", green="สีเขียว", blue="สีน้ำเงิน", yellow="สีเหลือง"),
           "shape": dict(circle="วงกลม", square="สี่เหลี่ยม", triangle="สามเหลี่ยม"),
           "count": {1: "หนึ่ง", 2: "สอง", 3: "สาม"}, "side": dict(left="ซ้าย", right="ขวา")},
    "vi": {"colour": dict(red="đỏ", green="xanh lá", blue="xanh dương", yellow="vàng"),
           "shape": dict(circle="hình tròn", square="hình vuông", triangle="hình tam giác"),
           "count": {1: "một", 2: "hai", 3: "ba"}, "side": dict(left="trái", right="phải")},
    "tl": {"colour": dict(red="pula", green="berde", blue="asul", yellow="dilaw"),
           "shape": dict(circle="bilog", square="parisukat", triangle="tatsulok"),
           "count": {1: "isa", 2: "dalawa", 3: "tatlo"}, "side": dict(left="kaliwa", right="kanan")},
    "zh": {"colour": dict(red="红色", green="绿色", blue="蓝色", yellow="黄色"),
           "shape": dict(circle="圆形", square="正方形", triangle="三角形"),
           "count": {1: "一", 2: "两", 3: "三"}, "side": dict(left="左", right="右")},
    "ta": {"colour": dict(red="சிவப்பு", green="பச்சை", blue="நீல", yellow="மஞ்சள்"),
           "shape": dict(circle="வட்டம்", square="சதுரம்", triangle="முக்கோணம்"),
           "count": {1: "ஒரு", 2: "இரண்டு", 3: "மூன்று"}, "side": dict(left="இடது", right="வலது")},
}

_EN_PLURAL = dict(circle="circles", square="squares", triangle="triangles")
_TA_PLURAL = dict(circle="வட்டங்கள்", square="சதுரங்கள்", triangle="முக்கோணங்கள்")

CAPTION_TEMPLATES = {
    "en": ("{n} {c} {s} on the {p}", "a picture of {n} {c} {s} on the {p} side"),
    "id": ("{n} {s} {c} di sebelah {p}", "gambar {n} {s} {c} di bagian {p}"),
    "ms": ("{n} {s} {c} di sebelah {p}", "terdapat {n} {s} {c} di bahagian {p}"),
    "th": ("{s}{c}{n}อันทางด้าน{p}", "มี{s}{c}{n}อันอยู่ทาง{p}"),
    "vi": ("{n} {s} màu {c} ở bên {p}", "có {n} {s} màu {c} nằm bên {p}"),
    "tl": ("{n} {c} {s} sa {p}", "may {n} {c} {s} sa gawing {p}"),
    "zh": ("{p}边有{n}个{c}的{s}", "{n}个{c}{s}在{p}边"),
    "ta": ("{p} பக்கத்தில் {n} {c} {s}", "{n} {c} {s} {p} பக்கம் உள்ளன"),
}

QUESTIONS = {
    "en": dict(colour="What colour are the shapes?", shape="What shape is shown?",
               count="How many shapes are there?", side="Which side are the shapes on?"),
    "id": dict(colour="Apa warna bentuk itu?", shape="Bentuk apa yang ditunjukkan?",
               count="Berapa banyak bentuk yang ada?", side="Di sisi mana bentuk itu berada?"),
    "ms": dict(colour="Apakah warna bentuk itu?", shape="Bentuk apakah yang ditunjukkan?",
               count="Berapakah bilangan bentuk itu?", side="Di sebelah manakah bentuk itu?"),
    "th": dict(colour="รูปทรงเป็นสีอะไร", shape="เป็นรูปทรงอะไร",
               count="มีรูปทรงกี่อัน", side="รูปทรงอยู่ด้านไหน"),
    "vi": dict(colour="Các hình có màu gì?", shape="Đó là hình gì?",
               count="Có bao nhiêu hình?", side="Các hình ở bên nào?"),
    "tl": dict(colour="Anong kulay ang mga hugis?", shape="Anong hugis ang makikita?",
               count="Ilan ang mga hugis?", side="Saang panig ang mga hugis?"),
    "zh": dict(colour="这些图形是什么颜色？", shape="这是什么形状？",
               count="有几个图形？", side="图形在哪一边？"),
    "ta": dict(colour="வடிவங்கள் என்ன நிறம்?", shape="இது என்ன வடிவம்?",
               count="எத்தனை வடிவங்கள் உள்ளன?", side="வடிவங்கள் எந்தப் பக்கத்தில் உள்ளன?"),
}



def _tl_link(word: str) -> str:
    """Tagalog linker: -ng after a vowel, -g after n, a separate 'na' after other consonants."""
    if word[-1] in "aeiou":
        return word + "ng"
    if word.endswith("n"):
        return word + "g"
    return word + " na"


def answer(lang: str, attribute: str, value) -> str:
    """The short answer naming `value` of `attribute` in `lang`."""
    return WORDS[lang][attribute][value]


def caption(lang: str, count: int, colour: str, shape: str, side: str, template: int = 0) -> str:
    """One caption of the scene in `lang`, using caption template number `template`."""
    w = WORDS[lang]
    n, c, s, p = w["count"][count], w["colour"][colour], w["shape"][shape], w["side"][side]
    if lang == "en" and count > 1:
        s = _EN_PLURAL[shape]
    elif lang == "ta" and count > 1:
        s = _TA_PLURAL[shape]
    elif lang == "tl":
        n, c = _tl_link(n), _tl_link(c)
    return CAPTION_TEMPLATES[lang][template].format(n=n, c=c, s=s, p=p)


def references(lang: str, count: int, colour: str, shape: str, side: str) -> list[str]:
    """All reference captions of the scene in `lang` (one per template)."""
    return [caption(lang, count, colour, shape, side, t) for t in range(len(CAPTION_TEMPLATES[lang]))]
