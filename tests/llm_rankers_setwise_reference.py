# ruff: noqa: RUF005, SIM113  (the reference's statements, kept as written)
"""A literal re-implementation of llm-rankers' setwise sorting, the reference of tests/test_kwise.py.

Source: ielab/llm-rankers, ``llmrankers/setwise.py`` at commit b36517bf17a3956dc56c4c967f972d02390b1cdd,
``SetwiseLlmRanker.heapify``, ``heapSort`` and the heapsort and bubblesort branches of ``rerank``, statement by
statement; ``compare(query, docs)`` is given from outside (it returns a passage label) and counted, as
``total_compare`` counts it. Documents are plain ids here (llm-rankers' ``SearchResult``).
"""

from __future__ import annotations

import copy

CHARACTERS = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
              "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W"]


class SetwiseReference:
    def __init__(self, compare, num_child=3, k=10, method="heapsort"):
        self._compare = compare
        self.num_child = num_child
        self.k = k
        self.method = method
        self.total_compare = 0
        self.CHARACTERS = CHARACTERS

    def compare(self, query, docs):
        self.total_compare += 1
        return self._compare(query, docs)

    def heapify(self, arr, n, i, query):
        # Find largest among root and children
        if self.num_child * i + 1 < n:  # if there are children
            docs = [arr[i]] + arr[self.num_child * i + 1: min((self.num_child * (i + 1) + 1), n)]
            inds = [i] + list(range(self.num_child * i + 1, min((self.num_child * (i + 1) + 1), n)))
            output = self.compare(query, docs)
            try:
                best_ind = self.CHARACTERS.index(output)
            except ValueError:
                best_ind = 0
            try:
                largest = inds[best_ind]
            except IndexError:
                largest = i
            # If root is not largest, swap with largest and continue heapifying
            if largest != i:
                arr[i], arr[largest] = arr[largest], arr[i]
                self.heapify(arr, n, largest, query)

    def heapSort(self, arr, query, k):  # noqa: N802 (the reference's name)
        n = len(arr)
        ranked = 0
        # Build max heap
        for i in range(n // self.num_child, -1, -1):
            self.heapify(arr, n, i, query)
        for i in range(n - 1, 0, -1):
            # Swap
            arr[i], arr[0] = arr[0], arr[i]
            ranked += 1
            if ranked == k:
                break
            # Heapify root element
            self.heapify(arr, i, 0, query)

    def rerank(self, query, ranking):
        original_ranking = copy.deepcopy(ranking)
        self.total_compare = 0
        if self.method == "heapsort":
            self.heapSort(ranking, query, self.k)
            ranking = list(reversed(ranking))
        elif self.method == "bubblesort":
            last_start = len(ranking) - (self.num_child + 1)

            for i in range(self.k):
                start_ind = last_start
                end_ind = last_start + (self.num_child + 1)
                is_change = False
                while True:
                    if start_ind < i:
                        start_ind = i
                    output = self.compare(query, ranking[start_ind:end_ind])
                    try:
                        best_ind = self.CHARACTERS.index(output)
                    except ValueError:
                        best_ind = 0
                    if best_ind != 0:
                        ranking[start_ind], ranking[start_ind + best_ind] = \
                            ranking[start_ind + best_ind], ranking[start_ind]
                        if not is_change:
                            is_change = True
                            if last_start != len(ranking) - (self.num_child + 1) \
                                    and best_ind == len(ranking[start_ind:end_ind]) - 1:
                                last_start += len(ranking[start_ind:end_ind]) - 1

                    if start_ind == i:
                        break

                    if not is_change:
                        last_start -= self.num_child

                    start_ind -= self.num_child
                    end_ind -= self.num_child
        results = []
        top_doc_ids = set()
        for doc in ranking[:self.k]:
            top_doc_ids.add(doc)
            results.append(doc)
        for doc in original_ranking:
            if doc not in top_doc_ids:
                results.append(doc)
        return results
