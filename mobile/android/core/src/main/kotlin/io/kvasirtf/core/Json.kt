package io.kvasirtf.core

/**
 * A minimal JSON reader for the model's sidecar, so the core needs no library (Android's
 * org.json is not on a plain JVM). Objects become Map<String, Any?>, arrays List<Any?>,
 * numbers Double, plus String, Boolean and null.
 */
internal class Json private constructor(private val text: String) {
    private var pos = 0

    companion object {
        fun parse(text: String): Any? {
            val p = Json(text)
            val value = p.value()
            p.skipSpace()
            if (p.pos != text.length) p.fail("trailing text")
            return value
        }
    }

    private fun fail(what: String): Nothing = throw ModelError("sidecar JSON: $what at character $pos")

    private fun skipSpace() {
        while (pos < text.length && text[pos].isWhitespace()) pos++
    }

    private fun value(): Any? {
        skipSpace()
        if (pos >= text.length) fail("unexpected end")
        return when (val c = text[pos]) {
            '{' -> obj()
            '[' -> array()
            '"' -> string()
            't' -> literal("true", true)
            'f' -> literal("false", false)
            'n' -> literal("null", null)
            else -> if (c == '-' || c.isDigit()) number() else fail("unexpected '$c'")
        }
    }

    private fun literal(word: String, v: Any?): Any? {
        if (!text.startsWith(word, pos)) fail("expected $word")
        pos += word.length
        return v
    }

    private fun obj(): Map<String, Any?> {
        val out = LinkedHashMap<String, Any?>()
        pos++
        skipSpace()
        if (pos < text.length && text[pos] == '}') { pos++; return out }
        while (true) {
            skipSpace()
            if (pos >= text.length || text[pos] != '"') fail("expected a key")
            val key = string()
            skipSpace()
            if (pos >= text.length || text[pos] != ':') fail("expected ':'")
            pos++
            out[key] = value()
            skipSpace()
            if (pos >= text.length) fail("unclosed object")
            when (text[pos++]) {
                ',' -> continue
                '}' -> return out
                else -> fail("expected ',' or '}'")
            }
        }
    }

    private fun array(): List<Any?> {
        val out = ArrayList<Any?>()
        pos++
        skipSpace()
        if (pos < text.length && text[pos] == ']') { pos++; return out }
        while (true) {
            out.add(value())
            skipSpace()
            if (pos >= text.length) fail("unclosed array")
            when (text[pos++]) {
                ',' -> continue
                ']' -> return out
                else -> fail("expected ',' or ']'")
            }
        }
    }

    private fun string(): String {
        val sb = StringBuilder()
        pos++
        while (true) {
            if (pos >= text.length) fail("unclosed string")
            val c = text[pos++]
            when (c) {
                '"' -> return sb.toString()
                '\\' -> {
                    if (pos >= text.length) fail("bad escape")
                    when (val e = text[pos++]) {
                        'n' -> sb.append('\n'); 't' -> sb.append('\t'); 'r' -> sb.append('\r')
                        'b' -> sb.append('\b'); 'f' -> sb.append('\u000c')
                        'u' -> {
                            if (pos + 4 > text.length) fail("bad \\u escape")
                            sb.append(text.substring(pos, pos + 4).toInt(16).toChar()); pos += 4
                        }
                        else -> sb.append(e)
                    }
                }
                else -> sb.append(c)
            }
        }
    }

    private fun number(): Double {
        val start = pos
        while (pos < text.length && (text[pos].isDigit() || text[pos] in "+-.eE")) pos++
        return text.substring(start, pos).toDoubleOrNull() ?: fail("bad number")
    }
}
