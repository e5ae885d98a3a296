"""Retrieval-augmented generation with LangChain on a tamis collection.

An LCEL chain: TamisRetriever -> prompt -> chat model -> text. The chat model here is
langchain-core's fake one, so the example runs offline; swap in any chat model.

    python examples/langchain_rag.py
"""

from __future__ import annotations

import asyncio
import tempfile

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

import tamis
from tamis.adapters.langchain import TamisRetriever

FAQ = {
    "reset": "To reset your password, open Settings > Account and click 'Forgot password'.",
    "export": "You can export your data as CSV from the Reports page.",
    "billing": "Invoices are sent by email on the first day of each month.",
    "delete": "Deleting your account removes all your projects after 30 days.",
}


def format_docs(docs: list[Document]) -> str:
    if not docs:
        return "(nothing relevant found)"
    return "\n".join(f"[{d.metadata['id']}] {d.page_content}" for d in docs)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        # 1. index a few documents into an embedded Qdrant Edge collection
        col = tamis.open_collection("faq", path=home, create=True)
        col.index(tamis.Document(id=k, text=v) for k, v in FAQ.items())

        # 2. the chain: retrieve -> prompt -> chat model -> string
        #    (TamisRetriever(collection="faq", path=home, k=2) opens it by name instead)
        retriever = TamisRetriever(collection=col, k=2)
        prompt = ChatPromptTemplate.from_messages([
            ("system", "Answer from the context only. If it is empty, say you don't know.\n\nContext:\n{context}"),
            ("human", "{question}"),
        ])
        llm = FakeListChatModel(responses=[
            "Open Settings > Account and click 'Forgot password'.",
            "Export them as CSV from the Reports page.",
        ])
        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()

        question = "How can I change my password?"
        docs = retriever.invoke(question)
        print(f"Q: {question}")
        for d in docs:
            print(f"   {d.metadata['score']:.3f}  {d.metadata['id']}: {d.page_content}")
        assert docs[0].metadata["id"] == "reset", docs
        print("A:", chain.invoke(question))

        # 3. the same chain, natively async
        answer = asyncio.run(chain.ainvoke("How do I download my data?"))
        print("A:", answer)
        col.close()


if __name__ == "__main__":
    main()
